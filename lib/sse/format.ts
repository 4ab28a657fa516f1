/**
 * Framing: one message in, the exact bytes of the wire format out. A pure function with no
 * I/O, so it can be tested (and trusted) on its own; everything else in this folder writes
 * only what it returns.
 *
 * Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

/** One message of an event stream. Every field is optional; `undefined` means "absent". */
export interface SseMessage {
  /** The event type; the browser dispatches it to `addEventListener(event, …)`. */
  event?: string;
  /** Becomes the browser's `lastEventId`, sent back as `Last-Event-ID` when it reconnects. */
  id?: string;
  /** How long the browser waits before reconnecting, in milliseconds. */
  retry?: number;
  /** The payload. It may span lines: each line becomes its own `data:` field. */
  data?: string;
  /** A comment: the browser ignores it, but it keeps proxies from timing the stream out. */
  comment?: string;
}

/** Thrown when a message cannot be framed without changing its meaning. Routes answer 400. */
export class SseFormatError extends Error {
  override name = 'SseFormatError';
}

/**
 * The spec's line terminators: CRLF, lone LF and lone CR all end a line. CRLF comes first in
 * the alternation so it is consumed as one terminator, not as two lines.
 */
const LINE_BREAK = /\r\n|\r|\n/;

/** The fields that carry text, and so must be well-formed Unicode. */
const TEXT_FIELDS = ['event', 'id', 'data', 'comment'] as const;

/**
 * Frames one message as the exact text of the wire format, ending with the blank line that
 * makes the browser dispatch it.
 *
 * Rules kept here, each of which a classic tutorial gets wrong somewhere:
 * - data is split on CR, LF and CRLF into one `data: ` line each, so a payload can never end
 *   the frame early or smuggle in a field of its own;
 * - exactly one space follows the colon: the parser strips one space, so a payload that
 *   itself starts with a space survives;
 * - `event` and `id` are single-line fields; a line break (or NUL, in an id) would change the
 *   meaning of the frame, so it is refused rather than silently stripped;
 * - an empty `event` is refused too: the browser treats `event: ` as no type at all and fires
 *   `message`, which is not what whoever set it asked for (leave it out to mean `message`);
 * - text must be well-formed Unicode: a lone surrogate cannot be encoded as UTF-8, and would
 *   go out silently as U+FFFD, so it is refused instead;
 * - presence is `!== undefined`: `data: ""`, `id: ""` (which resets the browser's last id) and
 *   `retry: 0` are all meaningful values.
 */
export function formatEvent(message: SseMessage): string {
  checkMessage(message);
  const { event, id, retry, data, comment } = message;
  let frame = '';
  if (comment !== undefined) {
    for (const line of comment.split(LINE_BREAK)) frame += `: ${line}\n`;
  }
  if (event !== undefined) frame += `event: ${event}\n`;
  if (id !== undefined) frame += `id: ${id}\n`;
  if (retry !== undefined) frame += `retry: ${retry}\n`;
  if (data !== undefined) {
    for (const line of data.split(LINE_BREAK)) frame += `data: ${line}\n`;
  }
  return frame + '\n';
}

/**
 * Throws `SseFormatError` for a message `formatEvent` would refuse, without framing it: for a
 * caller that must refuse before storing and frames later (lib/scale/redis-store.ts).
 */
export function checkMessage(message: SseMessage): void {
  const { event, id, retry, data, comment } = message;
  if (event === undefined && id === undefined && retry === undefined && data === undefined && comment === undefined) {
    throw new SseFormatError('Cannot format an event: it has no fields');
  }
  for (const field of TEXT_FIELDS) {
    const text = message[field];
    if (text !== undefined && !text.isWellFormed()) {
      throw new SseFormatError(`Cannot format an event: ${field} contains a lone surrogate (not valid Unicode)`);
    }
  }
  if (event === '') throw new SseFormatError('Cannot format an event: event type is empty (leave it out for message)');
  if (event !== undefined && LINE_BREAK.test(event)) {
    throw new SseFormatError(`Cannot format an event: event type ${JSON.stringify(event)} contains a line break`);
  }
  // The browser ignores an id containing NUL, so the client would silently keep an old id.
  if (id !== undefined && (LINE_BREAK.test(id) || id.includes('\0'))) {
    throw new SseFormatError(`Cannot format an event: id ${JSON.stringify(id)} contains a line break or NUL`);
  }
  // The browser accepts only ASCII digits here; anything else is ignored without a word.
  if (retry !== undefined && (!Number.isSafeInteger(retry) || retry < 0)) {
    throw new SseFormatError(`Cannot format an event: retry ${String(retry)} is not a non-negative integer`);
  }
}
