/**
 * HTTP/1.1 answers the requests of one connection in the order they came, each answer whole
 * before the next begins. Two things here depend on knowing where a connection stands in
 * that order:
 * - an error answer written straight to the socket (./errors.ts: requests too broken to
 *   reach a handler, CONNECT) must never land inside another answer;
 * - a request sent behind an event stream that is still open would wait for it to end, in
 *   practice for ever (./http-server.ts and ./stream-limits.ts hang up instead).
 * So every request notes its response as the connection's latest. Answers go out in order, so
 * the latest one speaks for all before it. The note costs one WeakMap entry per connection
 * (about 40 bytes of every open stream), and keeps a kept-alive connection's last request and
 * response alive until its next request or its close.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const latestResponse = new WeakMap<Socket, ServerResponse>();

/** Call for every request, before it is handled; returns the answer before it on its connection, if any. */
export function noteResponse(res: ServerResponse): ServerResponse | undefined {
  const before = latestResponse.get(res.req.socket);
  latestResponse.set(res.req.socket, res);
  return before;
}

/**
 * True when bytes written to `socket` now could land inside an answer: the latest one has not
 * ended, and it has begun, or waits behind another (no socket yet), or its request arrived
 * whole, so its handler may still answer. Not under way: a connection between requests, or
 * one whose latest request is still arriving (an error about it is its answer).
 */
export function answerUnderWay(socket: Socket): boolean {
  const latest = latestResponse.get(socket);
  if (latest === undefined || latest.writableEnded) return false;
  return latest.headersSent || latest.socket === null || latest.req.complete;
}

/** True when another request has arrived on `res`'s connection since its own. */
export function requestsBehind(res: ServerResponse): boolean {
  return latestResponse.get(res.req.socket) !== res;
}
