/**
 * One log line per request, written when it ends: for a stream, that is when the client
 * leaves, so the line's `ms` is how long the client stayed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientAddress } from './addresses.ts';
import type { Logger } from './log.ts';

export function logWhenDone(req: IncomingMessage, res: ServerResponse, clientAddress: ClientAddress, logger: Logger): void {
  const started = performance.now();
  // Read now: once the connection is gone, so is its socket.
  const address = clientAddress(req);
  // `on`, not `once`: 'close' fires once anyway, and `once` wraps every listener in another
  // function and object, which an open stream would keep alive for hours.
  res.on('close', () => {
    logger('request', {
      method: req.method,
      path: req.url?.split('?')[0],
      status: res.statusCode,
      ms: Math.round(performance.now() - started),
      address,
      ...(res.writableFinished ? {} : { aborted: true }),
    });
  });
}
