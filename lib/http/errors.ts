/**
 * What a client sees when something goes wrong: always a JSON `{"error": "..."}`, with a 4xx
 * when the request was at fault and a bare 500 (details in the log, not the answer) when we
 * were. Two doors lead here: errors thrown by a handler, and requests so broken that Node's
 * parser refuses them before any handler runs.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HttpError, sendJson } from './json.ts';
import type { Logger } from './log.ts';
import { SseFormatError } from '../sse/format.ts';

/** Answers an error a handler threw (or rejected with). */
export function answerError(req: IncomingMessage, res: ServerResponse, error: unknown, logger: Logger): void {
  // Once a stream or file has started, the status line is gone; all we can do is hang up.
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (error instanceof HttpError || error instanceof SseFormatError) {
    const status = error instanceof HttpError ? error.status : 400;
    const headers = error instanceof HttpError ? { ...error.headers } : {};
    // An unread request body would be parsed as the next request: close the connection.
    if (!req.complete) headers['Connection'] = 'close';
    sendJson(res, status, { error: error.message }, headers);
    return;
  }
  // Internals stay in the log; the client learns only that it was not its fault.
  logger('request.error', { method: req.method, url: req.url, error: String((error as Error)?.stack ?? error) });
  sendJson(res, 500, { error: 'Internal server error' });
}

/**
 * For the server's 'clientError' event: requests too broken to reach a handler (malformed,
 * headers too large, too slow) still get a JSON answer instead of a bare status line. There
 * is no response object yet, so the answer is written to the socket by hand.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // Bytes already written mean a response (perhaps a stream) is under way on this
  // connection: an error answer now would land in the middle of its body. Just hang up.
  if (!socket.writable || error.code === 'ECONNRESET' || socket.bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const [status, message] =
    error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request headers are too large']
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request took too long to arrive']
    : [400, 'Malformed HTTP request'];
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
