/**
 * The Server-Sent Events protocol, top to bottom:
 *
 *   1. framing     – `formatEvent` turns one message into the exact bytes of the wire format;
 *   2. opening     – `openStream` answers a request with the headers a stream needs;
 *   3. streaming   – `SseStream` writes whole frames, bounds its backlog, and cleans up once;
 *   4. heartbeats  – `StreamRegistry` keeps idle streams alive with one shared timer.
 *
 * Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../http/json.ts';

// ---------------------------------------------------------------------------------------------
// 1. Framing
// ---------------------------------------------------------------------------------------------

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
 * - presence is `!== undefined`: `data: ""`, `id: ""` (which resets the browser's last id) and
 *   `retry: 0` are all meaningful values.
 */
export function formatEvent(message: SseMessage): string {
  const { event, id, retry, data, comment } = message;
  if (event === undefined && id === undefined && retry === undefined && data === undefined && comment === undefined) {
    throw new SseFormatError('Cannot format an event: it has no fields');
  }
  let frame = '';
  if (comment !== undefined) {
    for (const line of comment.split(LINE_BREAK)) frame += `: ${line}\n`;
  }
  if (event !== undefined) {
    if (LINE_BREAK.test(event)) {
      throw new SseFormatError(`Cannot format an event: event type ${JSON.stringify(event)} contains a line break`);
    }
    frame += `event: ${event}\n`;
  }
  if (id !== undefined) {
    // The browser ignores an id containing NUL, so the client would silently keep an old id.
    if (LINE_BREAK.test(id) || id.includes('\0')) {
      throw new SseFormatError(`Cannot format an event: id ${JSON.stringify(id)} contains a line break or NUL`);
    }
    frame += `id: ${id}\n`;
  }
  if (retry !== undefined) {
    // The browser accepts only ASCII digits here; anything else is ignored without a word.
    if (!Number.isSafeInteger(retry) || retry < 0) {
      throw new SseFormatError(`Cannot format an event: retry ${String(retry)} is not a non-negative integer`);
    }
    frame += `retry: ${retry}\n`;
  }
  if (data !== undefined) {
    for (const line of data.split(LINE_BREAK)) frame += `data: ${line}\n`;
  }
  return frame + '\n';
}

// ---------------------------------------------------------------------------------------------
// 2. Opening a stream
// ---------------------------------------------------------------------------------------------

/**
 * The response headers of an event stream, each there for a reason:
 * - `text/event-stream` is what makes `EventSource` accept the response at all; the stream
 *   is always UTF-8, and saying so stops proxies and `curl` from guessing;
 * - `no-cache` stops browsers and proxies from storing or replaying a live stream;
 * - `X-Accel-Buffering: no` tells nginx (and proxies that copy it) not to buffer the response,
 *   which would otherwise hold events back until a buffer fills;
 * - `keep-alive` states the intent for HTTP/1.1 clients and proxies: this response does not end.
 * There is deliberately no `Content-Length` (the length is unknown) and no compression
 * (gzip buffers bytes until it has enough to compress, which delays events).
 */
function streamHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  };
  // HTTP/2 forbids the Connection header, and HTTP/1.0 closes by default anyway.
  if (req.httpVersion === '1.1') headers['Connection'] = 'keep-alive';
  return headers;
}

/**
 * The id the client saw last, if it says: browsers send the `Last-Event-ID` header when they
 * reconnect; clients that cannot set headers (a first `EventSource` connection, for one) may
 * pass `?lastEventId=` instead. The header wins when both are present.
 */
export function lastEventId(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers['last-event-id'];
  if (header !== undefined) return Array.isArray(header) ? header.join(', ') : header;
  return url.searchParams.get('lastEventId') ?? undefined;
}

/** Why a stream ended: counted by the metrics, and useful in logs. */
export type CloseReason = 'client' | 'done' | 'slow' | 'stalled' | 'shutdown';

export interface StreamOptions {
  /** Sent as `retry:` right after the headers: how long the browser waits to reconnect. */
  retryMs: number;
  /** The most bytes a client may leave unread before it is disconnected. */
  maxBacklogBytes: number;
  /** Extra response headers (CORS, for instance). */
  headers?: Record<string, string>;
}

/**
 * Answers `req` with an event stream and returns the stream to write to.
 *
 * Call it only once the request is known to be good: after `writeHead` the status is fixed at
 * 200, so every 4xx decision must come first. Headers are flushed at once so the browser's
 * `open` event fires now, not when the first event happens to arrive.
 */
export function openStream(
  registry: StreamRegistry,
  req: IncomingMessage,
  res: ServerResponse,
  options: StreamOptions,
): SseStream {
  const address = registry.admit(req);
  res.writeHead(200, { ...streamHeaders(req), ...options.headers });
  res.flushHeaders();
  const stream = new SseStream(res, registry, options.maxBacklogBytes, address);
  stream.send({ retry: options.retryMs });
  return stream;
}

// ---------------------------------------------------------------------------------------------
// 3. Streaming
// ---------------------------------------------------------------------------------------------

const HEARTBEAT = Buffer.from(formatEvent({ comment: 'heartbeat' }));

/**
 * One open event stream. It writes whole frames only, so a heartbeat can never land inside a
 * frame, and it owns the one cleanup that runs when the connection closes, whoever closes it.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #registry: StreamRegistry;
  readonly #maxBacklogBytes: number;
  /** Made on first use: most streams register one cleanup, and memory per stream adds up. */
  #cleanups: Array<() => void> | undefined;
  #closed = false;
  #closeReason: CloseReason = 'client';
  /** Set by every write, cleared by the heartbeat tick: a stream that wrote needs no ping. */
  wroteSinceTick = false;
  /** Heartbeat ticks in a row that found this stream's backlog stuck. */
  stalledTicks = 0;
  /** Backlog at the last tick, and bytes queued since: together they tell if any left. */
  backlogAtTick = 0;
  queuedSinceTick = 0;

  /** The client's address, counted against the per-address limit. */
  readonly address: string;

  constructor(res: ServerResponse, registry: StreamRegistry, maxBacklogBytes: number, address: string) {
    this.#res = res;
    this.#registry = registry;
    this.#maxBacklogBytes = maxBacklogBytes;
    this.address = address;
    registry.add(this);
    // 'close' fires exactly once, for every way a response can end: the client went away,
    // we called end(), or we destroyed the socket. So it is the one place to clean up. One
    // shared listener (not a closure per stream) keeps each stream a little smaller.
    streamOf.set(res, this);
    res.on('close', onResponseClose);
    // Except for a response queued behind an earlier one on a pipelined connection: it has no
    // socket yet, and if the connection dies first it never gets a 'close' of its own.
    if (res.socket === null) {
      const connection = res.req.socket;
      const onConnectionClose = () => this.cleanup();
      connection.once('close', onConnectionClose);
      this.onClose(() => connection.off('close', onConnectionClose));
    }
  }

  /** True once the connection has closed; writes after that are ignored. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written but not yet accepted by the kernel: the client's unread backlog. */
  get backlogBytes(): number {
    return this.#res.writableLength;
  }

  /** True while an earlier write is still waiting for the socket to drain. */
  get waitingForDrain(): boolean {
    // Writes go to the socket directly (see writeBody), so ask the socket, not the response.
    return this.#res.writableNeedDrain || this.#res.socket?.writableNeedDrain === true;
  }

  /** Frames and sends one message. Throws `SseFormatError` for a message that cannot be framed. */
  send(message: SseMessage): boolean {
    return this.write(formatEvent(message));
  }

  /**
   * Writes frames that are already serialised (whole frames only). Publishing serialises an
   * event once and hands the same bytes to every subscriber through this method.
   *
   * `res.write()` never refuses data: it queues what the socket cannot take. A client that stops
   * reading would make that queue grow without end, so a client that still has more than
   * `maxBacklogBytes` unread when the next write comes is disconnected; a browser reconnects
   * and resumes with `Last-Event-ID`. Checking before the write, not after, lets a client
   * that keeps up take a burst larger than the bound; the queue never exceeds the bound plus
   * one write.
   */
  write(frames: string | Buffer): boolean {
    if (this.#closed || this.#res.writableEnded) return false;
    if (this.#res.writableLength > this.#maxBacklogBytes) {
      this.destroy('slow');
      return false;
    }
    this.wroteSinceTick = true;
    this.queuedSinceTick += typeof frames === 'string' ? Buffer.byteLength(frames) : frames.length;
    writeBody(this.#res, frames);
    return true;
  }

  /** Registers work to undo when the stream closes (unsubscribe, clear a timer). */
  onClose(cleanup: () => void): void {
    if (this.#closed) cleanup();
    else (this.#cleanups ??= []).push(cleanup);
  }

  /** Ends the stream gracefully: what was written is still delivered, then the response ends. */
  end(reason: CloseReason = 'done'): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.#res.end();
  }

  /** Cuts the connection now, dropping the backlog: for clients that cannot keep up. */
  destroy(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    // The connection, not just the response: a response still queued behind another would
    // only be destroyed once its turn came, which for a stream behind a stream is never.
    this.#res.req.socket.destroy();
  }

  /** Runs once per connection, however it ended; safe to call again. */
  cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#registry.remove(this, this.#closeReason);
    for (const cleanup of this.#cleanups ?? []) cleanup();
    this.#cleanups = undefined;
  }
}

const streamOf = new WeakMap<ServerResponse, SseStream>();

const CRLF = Buffer.from('\r\n');
/** The last shared buffer framed as an HTTP chunk, and that chunk: fan-out writes one buffer to many streams in a row. */
let lastBody: Buffer | undefined;
let lastChunk: Buffer = CRLF;

/**
 * Writes body bytes straight to the socket, as one HTTP/1.1 chunk built once per buffer.
 *
 * `res.write()` would frame every write itself: a chunk-size line, the data and a CRLF, as
 * three writes corked until the next tick, for every subscriber of every event. Fanning one
 * event out to ten thousand streams then costs ten thousand times that. Framing the chunk once
 * and handing the socket one buffer halves the cost of a write. It is only safe while nothing
 * is queued in the response itself (a pipelined request's answer may still be waiting its
 * turn), so otherwise, and for HTTP/1.0 (no chunked encoding), `res.write()` does it.
 */
function writeBody(res: ServerResponse, frames: string | Buffer): void {
  const socket = res.socket;
  if (!res.chunkedEncoding || socket === null || !socket.writable || res.writableLength !== socket.writableLength) {
    res.write(frames);
    return;
  }
  const body = typeof frames === 'string' ? Buffer.from(frames) : frames;
  if (body !== lastBody) {
    lastBody = body;
    lastChunk = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, CRLF]);
  }
  socket.write(lastChunk);
}

function onResponseClose(this: ServerResponse): void {
  streamOf.get(this)?.cleanup();
}

// ---------------------------------------------------------------------------------------------
// 4. Heartbeats and the set of open streams
// ---------------------------------------------------------------------------------------------

/**
 * Every open stream, with one shared heartbeat timer.
 *
 * Proxies and load balancers close connections that carry no bytes for a while (nginx after
 * 60 s, many cloud balancers sooner), so an idle stream gets a comment line every
 * `heartbeatMs`. One timer serves all streams instead of one timer per client: ten thousand
 * clients cost one timer, and the timer runs only while a stream is open. A stream that wrote
 * anything during the last tick needs no heartbeat, so an idle stream hears from us at least
 * every two ticks.
 *
 * The same tick finds stalled clients: if a stream's backlog has not drained for
 * `stallTicks` ticks in a row, the client is not reading (or is gone without a goodbye), and
 * the stream is cut. (A peer that vanished without a FIN is finally declared dead by the
 * kernel when its retransmissions time out, about 15 minutes on Linux; a heartbeat is what
 * makes the kernel notice at all, since an idle socket never retransmits anything.)
 *
 * It also admits new streams: each one holds a socket and memory for as long as the client
 * likes, so their number is capped in total and per client address.
 */
export interface RegistryOptions {
  heartbeatMs: number;
  stallTicks?: number;
  maxStreams?: number;
  maxStreamsPerAddress?: number;
  /** Where a request comes from, for the per-address cap. */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

export class StreamRegistry {
  readonly #streams = new Set<SseStream>();
  readonly #perAddress = new Map<string, number>();
  readonly #options: Required<RegistryOptions>;
  #timer: NodeJS.Timeout | undefined;
  /** How many streams ended, by reason. */
  readonly closed: Record<CloseReason, number> = { client: 0, done: 0, slow: 0, stalled: 0, shutdown: 0 };
  /** How many streams were refused at the door, by limit. */
  readonly refused = { total: 0, address: 0 };

  constructor(options: RegistryOptions) {
    this.#options = {
      stallTicks: 2,
      maxStreams: Number.POSITIVE_INFINITY,
      maxStreamsPerAddress: Number.POSITIVE_INFINITY,
      clientAddress: (req) => req.socket?.remoteAddress,
      ...options,
    };
  }

  /**
   * Throws 503 or 429 (with Retry-After) when a new stream would pass a limit; otherwise
   * returns the client's address. Called before `writeHead`, while a status can still be chosen.
   * A browser's EventSource never reconnects after a non-200 answer, so a page should tell
   * its user to reload later.
   */
  admit(req: IncomingMessage): string {
    const address = this.#options.clientAddress(req) ?? 'unknown';
    if (this.#streams.size >= this.#options.maxStreams) {
      this.refused.total += 1;
      throw new HttpError(503, 'Too many open streams on this server; try again later', { 'Retry-After': '10' });
    }
    if ((this.#perAddress.get(address) ?? 0) >= this.#options.maxStreamsPerAddress) {
      this.refused.address += 1;
      throw new HttpError(429, 'Too many open streams from your address; close some first', { 'Retry-After': '10' });
    }
    return address;
  }

  /** Open streams right now. */
  get size(): number {
    return this.#streams.size;
  }

  /** True while the heartbeat timer runs (only while a stream is open). */
  get heartbeatRunning(): boolean {
    return this.#timer !== undefined;
  }

  add(stream: SseStream): void {
    this.#streams.add(stream);
    this.#perAddress.set(stream.address, (this.#perAddress.get(stream.address) ?? 0) + 1);
    if (this.#timer === undefined && this.#options.heartbeatMs > 0) {
      this.#timer = setInterval(() => this.#tick(), this.#options.heartbeatMs);
      // The timer alone should never keep the process alive: the server does that.
      this.#timer.unref();
    }
  }

  remove(stream: SseStream, reason: CloseReason): void {
    if (!this.#streams.delete(stream)) return;
    this.closed[reason] += 1;
    const count = this.#perAddress.get(stream.address)! - 1;
    // Delete at zero, or the map would keep one entry for every address ever seen.
    if (count === 0) this.#perAddress.delete(stream.address);
    else this.#perAddress.set(stream.address, count);
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Ends every stream, first telling clients when to come back (graceful shutdown). */
  endAll(retryMs: number): void {
    const goodbye = formatEvent({ retry: retryMs });
    for (const stream of this.#streams) {
      stream.write(goodbye);
      stream.end('shutdown');
    }
  }

  #tick(): void {
    for (const stream of this.#streams) {
      // Bytes that left the backlog since the last tick: what it held, plus what was queued,
      // minus what it holds now. None left while a write waits for a drain: no progress.
      const sent = stream.backlogAtTick + stream.queuedSinceTick - stream.backlogBytes;
      stream.backlogAtTick = stream.backlogBytes;
      stream.queuedSinceTick = 0;
      if (stream.waitingForDrain && sent <= 0) {
        stream.stalledTicks += 1;
        if (stream.stalledTicks >= this.#options.stallTicks) {
          stream.destroy('stalled');
          continue;
        }
      } else {
        stream.stalledTicks = 0;
      }
      if (!stream.wroteSinceTick) stream.write(HEARTBEAT);
      stream.wroteSinceTick = false;
    }
  }
}
