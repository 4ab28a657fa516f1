/**
 * What a client sees when something goes wrong: always a JSON `{"error": "..."}`, with a 4xx
 * when the request was at fault and a bare 500 (details in the log, not the answer) when we
 * were. Two doors lead here: errors thrown by a handler, and requests so broken that Node's
 * parser refuses them before any handler runs.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { answerUnderWay } from './answer-order.ts';
import { HttpError, sendJson } from './json.ts';
import type { Logger } from './log.ts';
import { SseFormatError } from '../sse/format.ts';

/** Answers an error a handler threw (or rejected with). */
export async function answerError(req: IncomingMessage, res: ServerResponse, error: unknown, logger: Logger): Promise<void> {
  // Once a stream or file has started, the status line is gone; all we can do is hang up.
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The client gave up while sending its body: nobody is left to answer, and it is no fault of ours.
  if (req.destroyed && !req.complete) {
    logger('request.aborted', { method: req.method, url: req.url });
    return;
  }
  if (error instanceof HttpError || error instanceof SseFormatError) {
    const status = error instanceof HttpError ? error.status : 400;
    const headers = error instanceof HttpError ? { ...error.headers } : {};
    if (!req.complete) {
      await discardBody(req);
      // Gone while we waited, or still sending after the grace period: close after answering.
      if (res.destroyed) return;
      if (!req.complete) headers['Connection'] = 'close';
    }
    sendJson(res, status, { error: error.message }, headers);
    return;
  }
  // Internals stay in the log; the client learns only that it was not its fault.
  logger('request.error', { method: req.method, url: req.url, error: String((error as Error)?.stack ?? error) });
  sendJson(res, 500, { error: 'Internal server error' });
}

/**
 * How long the rest of a refused body may keep arriving before we answer anyway. Answering
 * and closing at once (what a naive server does) while the client is still sending makes our
 * kernel meet its next packets with a reset, and a reset can destroy our answer before the
 * client reads it: it sees "connection reset" instead of the 413. So, in the spirit of nginx's
 * lingering close, the rest of the body is read and thrown away first (Node's parser knows
 * where it ends, so the connection stays usable), but for this long at most.
 */
const LINGER_MS = 5_000;

/** Reads and drops the rest of the request body; resolves when it ended, or after LINGER_MS. */
function discardBody(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      req.off('end', done).off('close', done);
      resolve();
    };
    const timer = setTimeout(done, LINGER_MS);
    req.once('end', done).once('close', done);
    // Flowing with no 'data' listener: each chunk is read and dropped.
    req.resume();
  });
}

/**
 * For the server's 'clientError' event: requests too broken to reach a handler (malformed,
 * headers too large, too slow) still get a JSON answer instead of a bare status line. There
 * is no response object yet, so the answer is written to the socket by hand.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, message] =
    error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request headers are too large']
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request took too long to arrive']
    : [400, 'Malformed HTTP request'];
  answerOnSocket(socket, status, message);
}

/**
 * For the server's 'connect' event: a `CONNECT` asks us to be a proxy, which we are not. Node
 * hands such a request over as a bare socket (without a listener, it just closes it), so the
 * 405 is written by hand.
 */
export function answerConnect(_req: IncomingMessage, socket: Socket): void {
  answerOnSocket(socket, 405, 'CONNECT is not supported: this is not a proxy', 'Allow: GET, HEAD, POST, OPTIONS\r\n');
}

/** A whole JSON error answer written straight to the socket, which then closes. */
function answerOnSocket(socket: Socket, status: number, message: string, extraHeaders = ''): void {
  // An answer under way on this connection (a stream, say) would get ours in the middle of
  // its body: hang up instead. A connection between requests, kept alive after its earlier
  // answers, gets its error answer like a new one.
  if (!socket.writable || answerUnderWay(socket)) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${extraHeaders}Content-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
