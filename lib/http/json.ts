/**
 * The plain-HTTP side of the server: JSON answers, errors that carry their status, and request
 * bodies read with a size limit. Every error a client sees is `{"error": "..."}`: a 4xx when
 * the request was at fault, a bare 500 when we were, never a stack trace (./errors.ts sends
 * them, through `sendJson` or, for requests too broken to reach a handler, by hand).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error meant for the client: its message is safe to show, its status says whose fault. */
export class HttpError extends Error {
  override name = 'HttpError';
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/** Answers with a JSON body. `no-store`: API answers describe live state and must not be cached. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Reads the whole request body, refusing more than `limit` bytes with 413.
 *
 * The limit is checked as bytes arrive, not after: a client announcing (or just sending) a
 * gigabyte is stopped at the limit instead of being buffered into memory first.
 *
 * Listeners, not `for await`: leaving a `for await` loop early destroys the request, and with
 * it the socket, while the client is still sending. Its kernel then gets a reset instead of
 * our 413. Here the rest of the body is left for ./errors.ts, which drains it before answering.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, `Request body is larger than ${limit} bytes`);
  if (Number(req.headers['content-length']) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      stop();
      reject(tooLarge());
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/**
 * How deep arrays and objects may nest in a JSON body. `JSON.parse` copes with deep nesting,
 * but `JSON.stringify` (which republishes `data`) and every other recursive walk run out of
 * stack a few thousand levels down, which would be a 500. No honest body comes near this.
 */
const MAX_JSON_DEPTH = 32;

/** True when `text` opens more than `limit` arrays or objects inside each other (strings skipped). */
function exceedsDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (inString) {
      if (char === '\\') index += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') {
      inString = true;
    } else if (char === '{' || char === '[') {
      depth += 1;
      if (depth > limit) return true;
    } else if (char === '}' || char === ']') {
      depth -= 1;
    }
  }
  return false;
}

/**
 * Reads a JSON or form-encoded body into a plain object of fields.
 * HTML forms post `application/x-www-form-urlencoded`; `fetch` callers usually post JSON.
 */
export async function readFields(
  req: IncomingMessage,
  limit: number,
  accept: { form: boolean } = { form: false },
): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const isForm = type === 'application/x-www-form-urlencoded';
  if (type !== 'application/json' && !(accept.form && isForm)) {
    const allowed = accept.form ? 'application/json or application/x-www-form-urlencoded' : 'application/json';
    throw new HttpError(415, `Content-Type must be ${allowed}, not "${type || 'none'}"`);
  }
  const body = await readBody(req, limit);
  let text: string;
  try {
    // `fatal`: invalid UTF-8 is refused, not silently turned into U+FFFD and published.
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new HttpError(400, 'Request body is not valid UTF-8');
  }
  if (isForm) return Object.fromEntries(new URLSearchParams(text));
  if (exceedsDepth(text, MAX_JSON_DEPTH)) {
    throw new HttpError(400, `Request body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'Request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'Request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
