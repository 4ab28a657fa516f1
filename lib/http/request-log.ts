/**
 * One log line per request, written when it ends: for a stream, that is when the client
 * leaves, so the line's `ms` is how long the client stayed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientAddress } from './addresses.ts';
import type { Logger } from './log.ts';

/** What the line needs that the response can no longer tell when it closes. */
interface Start {
  at: number;
  /** Read at the start: once the connection is gone, so is its socket. */
  address: string | undefined;
}

/** Returns the function to call on every request: it notes the start, and logs the line at the end. */
export function requestLogger(clientAddress: ClientAddress, logger: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  // One listener serves every response and finds each one's start by the response, rather
  // than a closure per request that a stream keeps for hours (see `SseStream.onClose`,
  // lib/sse/stream.ts, for what that weighed).
  const starts = new WeakMap<ServerResponse, Start>();
  // `this` is the response: an emitter calls its listeners with itself as `this`.
  function logLine(this: ServerResponse): void {
    const start = starts.get(this)!;
    logger('request', {
      method: this.req.method,
      path: this.req.url?.split('?')[0],
      status: this.statusCode,
      ms: Math.round(performance.now() - start.at),
      address: start.address,
      ...(this.writableFinished ? {} : { aborted: true }),
    });
  }
  return (req, res) => {
    starts.set(res, { at: performance.now(), address: clientAddress(req) });
    // `on`, not `once`: 'close' fires once anyway, and `once` wraps every listener in another
    // function and object, which an open stream would keep alive for hours.
    res.on('close', logLine);
  };
}
