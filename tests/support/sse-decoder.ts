/**
 * A decoder that follows the WHATWG "interpreting an event stream" algorithm step by step,
 * so the tests check our framing against the spec rather than against our own encoder.
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

export interface DecodedEvent {
  type: string;
  data: string;
  lastEventId: string;
}

export class SseDecoder {
  // A streaming UTF-8 decoder strips one leading BOM and copes with characters split across chunks.
  readonly #text = new TextDecoder('utf-8');
  #buffer = '';
  #data = '';
  #eventType = '';
  #lastEventIdBuffer = '';
  /** The reconnection time the stream asked for, if any. */
  retry: number | undefined;
  /** Comment lines seen, without their leading colon. */
  readonly comments: string[] = [];

  /** Feeds bytes; returns the events they completed. */
  push(chunk: Uint8Array | string): DecodedEvent[] {
    this.#buffer += typeof chunk === 'string' ? chunk : this.#text.decode(chunk, { stream: true });
    const events: DecodedEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (!match) break;
      // A CR at the very end may be the first half of a CRLF still in flight.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#processLine(line);
      if (event) events.push(event);
    }
    return events;
  }

  #processLine(line: string): DecodedEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1));
      return undefined;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#eventType = value;
        break;
      case 'data':
        this.#data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\0')) this.#lastEventIdBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
    return undefined;
  }

  #dispatch(): DecodedEvent | undefined {
    const lastEventId = this.#lastEventIdBuffer;
    if (this.#data === '') {
      this.#eventType = '';
      return undefined;
    }
    const event = { type: this.#eventType || 'message', data: this.#data.slice(0, -1), lastEventId };
    this.#data = '';
    this.#eventType = '';
    return event;
  }
}
