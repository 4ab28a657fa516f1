/**
 * One benchmark subscriber on a raw `node:net` socket: it sends `GET`, reads the status line and
 * headers, decodes HTTP/1.1 chunked transfer coding, and parses the event stream, counting
 * events, checking that ids only grow, counting comment lines (heartbeats) and, when asked,
 * measuring publish→receive latency from a `t=<microseconds>` prefix in the data.
 *
 * It is written for speed, not for teaching: it works on bytes, never decodes the payload to a
 * string, and keeps only what the benchmark counts. It still follows the spec's line rules (CR,
 * LF and CRLF all end a line, even when a CRLF is split across two reads) and its field rules
 * (`data` and `id`, one optional space after the colon, an id with NUL is ignored).
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 * https://www.rfc-editor.org/rfc/rfc9112#section-7.1
 */
import { connect, type Socket } from 'node:net';
import type { LatencyHistogram } from './histogram.ts';

export interface SseClientOptions {
  host: string;
  port: number;
  path: string;
  localAddress?: string;
  /** Record publish→receive latency for every event into this histogram. */
  latency?: LatencyHistogram;
}

/** Where the HTTP decoder is. */
const HEADERS = 0;
const CHUNK_SIZE = 1;
const CHUNK_DATA = 2;
const CHUNK_END = 3;
const IDENTITY = 4;
const DONE = 5;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

/** Microseconds on the system-wide monotonic clock, comparable across processes. */
export function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export class SseClient {
  readonly socket: Socket;
  readonly #latency: LatencyHistogram | undefined;
  /** Resolves when the response headers arrived (status 200, an event stream). */
  readonly ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (error: Error) => void;

  // HTTP decoding
  #state = HEADERS;
  #head = '';
  #chunkLeft = 0;
  #sizeLine = '';

  // Event stream parsing
  /** The unfinished line carried over from the previous read, if any. */
  #carry: Buffer | undefined;
  /** The previous read ended in CR: a LF starting the next one belongs to that CR. */
  #skipLf = false;
  #hasData = false;
  #lastIdBuffer = Number.NaN;
  #eventMicros = Number.NaN;
  #receivedAt = 0;

  // What the benchmark counts
  events = 0;
  outOfOrder = 0;
  comments = 0;
  lastEventId = -1;
  /** When the newest event arrived (µs, `nowMicros`). */
  lastEventAt = 0;
  error: string | undefined;
  ended = false;

  constructor(options: SseClientOptions) {
    this.#latency = options.latency;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Nobody may be waiting on `ready` when a later error happens; the reason is kept in
    // `error` (which #fail sets first), where the worker reports it.
    this.ready.catch((reason: unknown) => {
      this.error ??= String(reason);
    });
    this.socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(`GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.socket.on('error', (error) => this.#fail(error.message));
    this.socket.on('close', () => {
      this.ended = true;
      this.#fail('connection closed');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  #fail(message: string): void {
    this.error ??= message;
    this.#rejectReady(new Error(message));
  }

  #onData(chunk: Buffer): void {
    this.#receivedAt = nowMicros();
    let position = 0;
    while (position < chunk.length) {
      switch (this.#state) {
        case HEADERS: {
          this.#head += chunk.toString('latin1', position);
          const end = this.#head.indexOf('\r\n\r\n');
          if (end === -1) return;
          const rest = this.#head.length - (end + 4);
          this.#startBody(this.#head.slice(0, end));
          this.#head = '';
          position = chunk.length - rest;
          break;
        }
        case CHUNK_SIZE: {
          const lineEnd = chunk.indexOf(LF, position);
          if (lineEnd === -1) {
            this.#sizeLine += chunk.toString('latin1', position);
            return;
          }
          this.#sizeLine += chunk.toString('latin1', position, lineEnd);
          position = lineEnd + 1;
          // Chunk extensions (`;name=value`) are allowed and ignored.
          const size = Number.parseInt(this.#sizeLine.split(';')[0]!.trim(), 16);
          this.#sizeLine = '';
          if (!Number.isSafeInteger(size) || size < 0) {
            this.#fail('bad chunk size');
            this.socket.destroy();
            return;
          }
          if (size === 0) {
            this.#state = DONE;
            this.ended = true;
            return;
          }
          this.#chunkLeft = size;
          this.#state = CHUNK_DATA;
          break;
        }
        case CHUNK_DATA: {
          const end = Math.min(chunk.length, position + this.#chunkLeft);
          this.#parse(chunk, position, end);
          this.#chunkLeft -= end - position;
          position = end;
          if (this.#chunkLeft === 0) {
            this.#state = CHUNK_END;
            this.#chunkLeft = 2;
          }
          break;
        }
        case CHUNK_END: {
          // The CRLF after each chunk's data.
          const take = Math.min(this.#chunkLeft, chunk.length - position);
          position += take;
          this.#chunkLeft -= take;
          if (this.#chunkLeft === 0) this.#state = CHUNK_SIZE;
          break;
        }
        case IDENTITY:
          this.#parse(chunk, position, chunk.length);
          return;
        default:
          return;
      }
    }
  }

  #startBody(head: string): void {
    const [statusLine = '', ...lines] = head.split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim().toLowerCase());
    }
    if (status !== 200 || !headers.get('content-type')?.startsWith('text/event-stream')) {
      this.#fail(`unexpected response: ${statusLine}`);
      this.socket.destroy();
      this.#state = DONE;
      return;
    }
    this.#state = headers.get('transfer-encoding')?.includes('chunked') ? CHUNK_SIZE : IDENTITY;
    this.#resolveReady();
  }

  /** Feeds stream bytes `chunk[start, end)` to the line splitter. */
  #parse(chunk: Buffer, start: number, end: number): void {
    if (start >= end) return;
    if (this.#skipLf) {
      this.#skipLf = false;
      if (chunk[start] === LF) start += 1;
    }
    let bytes = chunk.subarray(start, end);
    if (this.#carry) {
      bytes = Buffer.concat([this.#carry, bytes]);
      this.#carry = undefined;
    }
    // Servers send LF; scanning for LF alone is fast, so CR is handled only when present.
    const hasCr = bytes.indexOf(CR) !== -1;
    let lineStart = 0;
    for (;;) {
      let lineEnd = bytes.indexOf(LF, lineStart);
      let next = lineEnd + 1;
      if (hasCr) {
        const cr = bytes.indexOf(CR, lineStart);
        if (cr !== -1 && (lineEnd === -1 || cr < lineEnd)) {
          lineEnd = cr;
          if (cr + 1 === bytes.length) {
            this.#skipLf = true;
            next = cr + 1;
          } else {
            next = bytes[cr + 1] === LF ? cr + 2 : cr + 1;
          }
        }
      }
      if (lineEnd === -1) break;
      this.#line(bytes, lineStart, lineEnd);
      lineStart = next;
    }
    if (lineStart < bytes.length) this.#carry = Buffer.from(bytes.subarray(lineStart));
  }

  #line(bytes: Buffer, start: number, end: number): void {
    if (start === end) {
      this.#dispatch();
      return;
    }
    const first = bytes[start];
    if (first === COLON) {
      this.comments += 1;
      return;
    }
    let colon = bytes.indexOf(COLON, start);
    if (colon === -1 || colon > end) colon = end;
    let value = colon + 1;
    if (value < end && bytes[value] === SPACE) value += 1;
    const nameLength = colon - start;
    if (nameLength === 4 && first === 0x64 && bytes[start + 1] === 0x61 && bytes[start + 2] === 0x74 && bytes[start + 3] === 0x61) {
      // data
      this.#hasData = true;
      // `t=<µs>` at the start of the payload: the publisher's send time.
      if (this.#latency && bytes[value] === 0x74 && bytes[value + 1] === 0x3d) {
        this.#eventMicros = leadingNumber(bytes, value + 2, end);
      }
    } else if (nameLength === 2 && first === 0x69 && bytes[start + 1] === 0x64) {
      // id: the browser ignores an id containing NUL; ids here are numbers.
      const nul = bytes.indexOf(0, value);
      if (nul === -1 || nul >= end) this.#lastIdBuffer = digits(bytes, value, end);
    }
  }

  #dispatch(): void {
    if (!this.#hasData) return;
    this.#hasData = false;
    this.events += 1;
    const id = this.#lastIdBuffer;
    if (!(id > this.lastEventId)) this.outOfOrder += 1;
    else this.lastEventId = id;
    this.lastEventAt = this.#receivedAt;
    if (this.#latency && !Number.isNaN(this.#eventMicros)) {
      this.#latency.record(this.#receivedAt - this.#eventMicros);
      this.#eventMicros = Number.NaN;
    }
  }
}

/** The decimal number in `bytes[start, end)`, or NaN if anything else is there. */
function digits(bytes: Buffer, start: number, end: number): number {
  if (start >= end) return Number.NaN;
  let value = 0;
  for (let index = start; index < end; index++) {
    const digit = bytes[index]! - 0x30;
    if (digit < 0 || digit > 9) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

/** The decimal number at the start of `bytes[start, end)`, or NaN if there is none. */
function leadingNumber(bytes: Buffer, start: number, end: number): number {
  let index = start;
  let value = 0;
  for (; index < end; index++) {
    const digit = bytes[index]! - 0x30;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return index === start ? Number.NaN : value;
}
