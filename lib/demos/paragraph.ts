/**
 * `GET /events`: the demo from the Python and Go SSE tutorials. A paragraph arrives one
 * sentence at a time, each with an id, then an `end` event, then the server closes.
 *
 * It shows the resume protocol in its smallest form: a browser that loses the connection
 * reconnects with `Last-Event-ID: n` and continues at sentence n + 1. Once the paragraph is
 * finished, a reconnect gets 204 No Content: any final answer but 200 (a redirect is
 * followed) makes `EventSource` stop reconnecting for good, and 204 is the one that says
 * "done" rather than "error".
 *
 * Two things come from the server around it (lib/http/). The `openStream` it is handed is
 * lib/sse/stream.ts's behind the admission limits (lib/http/stream-limits.ts), so it takes
 * only the request and the response. And a bad value is thrown as an `HttpError`, which the
 * server answers as a JSON 400 (lib/http/http-server.ts). Copied into a plain
 * `http.createServer`, the handler needs a try/catch that answers it: uncaught, the throw
 * would end the process.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../http/json.ts';
import type { Route } from '../http/router.ts';
import type { OpenStream } from '../http/stream-limits.ts';
import { lastEventId } from '../sse/resume.ts';

export const SENTENCES = [
  'Server-Sent Events let a server push text to the browser over one long HTTP response.',
  'Each event is a few lines of text, ended by a blank line.',
  'Every event here carries an id, and the browser remembers the last one it saw.',
  'If the connection drops, the browser reconnects and sends that id back as Last-Event-ID.',
  'So the server picks up right where it left off, and nothing is lost.',
] as const;

/**
 * Reads an integer query or header value, refusing anything that is not one in range.
 * `Number()` alone would take `0x10`, `1e3`, ` 10 ` and the empty string; digits only, at
 * most nine of them, refuse those and keep the value a safe integer.
 */
function integerIn(name: string, text: string, min: number, max: number): number {
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new HttpError(400, `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

function handleParagraph(
  openStream: OpenStream,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): void {
  const intervalText = url.searchParams.get('interval');
  const intervalMs = intervalText === null ? 1000 : integerIn('interval', intervalText, 10, 10_000);
  const lastIdText = lastEventId(req, url);
  // Empty means "no id yet", as on /stream: `?lastEventId=` may be sent before any event arrived.
  const lastId = lastIdText === undefined || lastIdText === '' ? 0 : integerIn('Last-Event-ID', lastIdText, 0, SENTENCES.length);

  if (lastId === SENTENCES.length) {
    res.writeHead(204).end();
    return;
  }

  const stream = openStream(req, res);
  let next = lastId;
  const timer = setInterval(() => {
    stream.send({ id: String(next + 1), data: SENTENCES[next]! });
    next += 1;
    if (next === SENTENCES.length) {
      clearInterval(timer);
      // `end` has data so the browser dispatches it: an event with no data is never delivered.
      stream.send({ event: 'end', data: 'The paragraph is complete.' });
      stream.end('done');
    }
  }, intervalMs);
  stream.onClose(() => clearInterval(timer));
}

export function paragraphRoutes(openStream: OpenStream): Route[] {
  return [{ method: 'GET', path: '/events', handle: (req, res, url) => handleParagraph(openStream, req, res, url) }];
}
