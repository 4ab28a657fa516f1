/**
 * Opening event streams for the routes, behind two admission limits.
 *
 * Each open stream holds a socket and some memory for as long as its client likes, so their
 * number is capped in total (503) and per client address (429), both with `Retry-After`. (An
 * IPv6 client counts per /64, `limitKey` in ./addresses.ts: one host owns that many addresses.)
 * The decision is made before the stream opens, while a status other than 200 can still be sent.
 * A browser's `EventSource` never reconnects after a non-200 answer, so a page should tell
 * its user to reload later.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StreamRegistry } from '../sse/registry.ts';
import { openStream, type SseStream, type StreamOptions } from '../sse/stream.ts';
import { limitKey, type ClientAddress } from './addresses.ts';
import { requestsBehind } from './answer-order.ts';
import { HttpError } from './json.ts';

/** What routes call to answer with an event stream: admission first, then the protocol. */
export type OpenStream = (req: IncomingMessage, res: ServerResponse) => SseStream;

export interface StreamLimitOptions extends StreamOptions {
  registry: StreamRegistry;
  maxStreams: number;
  maxStreamsPerAddress: number;
  /** Where a request comes from (./addresses.ts). */
  clientAddress: ClientAddress;
}

export function limitedStreams(options: StreamLimitOptions): OpenStream {
  const { registry, maxStreams, maxStreamsPerAddress, clientAddress } = options;
  const perAddress = new Map<string, number>();
  /** The key each open stream was admitted under: looked up when it closes, gone with it. */
  const admittedAs = new WeakMap<SseStream, string>();
  // One function releases every stream (see `SseStream.onClose` for why not one closure each).
  const release = (stream: SseStream) => {
    const address = admittedAs.get(stream)!;
    const count = perAddress.get(address)! - 1;
    // Delete at zero, or the map would keep one entry for every address ever seen.
    if (count === 0) perAddress.delete(address);
    else perAddress.set(address, count);
  };
  return (req, res) => {
    // A route that awaits before opening (a lookup) may find requests already pipelined
    // behind it, which could never be answered once this stream is open: hang up instead,
    // as for requests that arrive behind an open stream (./http-server.ts). A HEAD ends at once.
    if (req.method !== 'HEAD' && requestsBehind(res)) {
      req.socket.destroy();
      throw new HttpError(400, 'Requests were sent behind this stream on its connection; none could be answered');
    }
    const address = limitKey(clientAddress(req));
    if (registry.size >= maxStreams) {
      throw new HttpError(503, 'Too many open streams on this server; try again later', { 'Retry-After': '10' });
    }
    const count = perAddress.get(address) ?? 0;
    if (count >= maxStreamsPerAddress) {
      throw new HttpError(429, 'Too many open streams from your address; close some first', { 'Retry-After': '10' });
    }
    const stream = openStream(registry, req, res, options);
    perAddress.set(address, count + 1);
    admittedAs.set(stream, address);
    stream.onClose(release);
    return stream;
  };
}
