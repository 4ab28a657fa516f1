/**
 * Opening an event stream, and the stream itself: the headers and why each is there, flushing
 * them at once, writing whole frames, bounding what a slow client can pile up, and the one
 * cleanup that runs when the connection goes away.
 *
 * On a first read, take `write()` as `res.write(frames)` and the close handling as
 * `res.on('close', () => this.cleanup())`: that is the whole protocol. The rest is tuning for
 * thousands of streams (a shared listener, frames built once, ./preframed-write.ts), each
 * with the measurement that justifies it.
 *
 * Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { formatEvent, type SseMessage } from './format.ts';
import { writePreframed } from './preframed-write.ts';
import type { StreamRegistry } from './registry.ts';

/**
 * The response headers of an event stream, each there for a reason:
 * - `text/event-stream` is what makes `EventSource` accept the response at all; the stream
 *   is always UTF-8, and saying so stops proxies and `curl` from guessing;
 * - `no-cache` makes every cache revalidate instead of answering from a stored copy, so no
 *   client is ever handed a replay of someone else's old stream (`no-store`, which forbids
 *   storing at all, is what the JSON answers use); `no-transform` forbids proxies to rewrite
 *   the body, compression included, which would hold events back;
 * - `X-Accel-Buffering: no` tells nginx (and proxies that copy it) not to buffer the response,
 *   which would otherwise hold events back until a buffer fills;
 * - `Connection: keep-alive` is often explained as "this response does not end"; it is not
 *   that. It says the connection may carry another request after this answer, which HTTP/1.1
 *   assumes anyway. What lets the response run on is that it has no `Content-Length`: its
 *   body goes in chunks (`Transfer-Encoding: chunked`, which Node adds), so it ends only when
 *   we say so. The header is named here because otherwise Node sends it itself, together
 *   with `Keep-Alive: timeout=5`, a hint about the idle time between requests that means
 *   nothing for an answer that lasts for hours.
 * There is deliberately no compression either (gzip buffers bytes until it has enough to
 * compress, which delays events).
 */
function streamHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  };
  // HTTP/2 forbids the Connection header, and HTTP/1.0 closes by default anyway.
  if (req.httpVersion === '1.1') headers['Connection'] = 'keep-alive';
  return headers;
}

/** The stream's type, for the code that holds one; see the class for why not its constructor. */
export type { SseStream };

/** Why a stream ended: counted by the metrics, and useful in logs. */
export type CloseReason = 'client' | 'done' | 'slow' | 'stalled' | 'shutdown';

export interface StreamOptions {
  /** Sent as `retry:` right after the headers: how long the browser waits to reconnect. */
  retryMs: number;
  /** The most bytes a client may leave unread before it is disconnected. */
  maxBacklogBytes: number;
}

/**
 * Answers `req` with an event stream and returns the stream to write to.
 *
 * Call it only once the request is known to be good: after `writeHead` the status is fixed at
 * 200, so every 4xx decision must come first. Headers are flushed at once, so the browser's
 * `open` event fires now, not when the first event happens to arrive.
 *
 * "At once" means at the end of this turn of the event loop: the socket is corked until then
 * (held writes leave together when it is uncorked), so the headers, the `retry:` line and
 * whatever the route writes in the same turn (the hub's first frame, when its store is in
 * this process) leave in one packet, one system call instead of three. Measured with strace:
 * 500 streams took 1,500 writes before, 500 writevs (one call, several buffers) after.
 * Leaving the headers unflushed for Node to send with the first body bytes also makes one
 * packet, but Node then keeps the joined text alive with the response: about 600 bytes more
 * for every open stream, measured with 5,000 streams.
 *
 * A HEAD request (a proxy's health check, say) gets the same headers and nothing else: the
 * response ends at once, and the stream closes with it, running its cleanups as for any
 * disconnect.
 */
export function openStream(
  registry: StreamRegistry,
  req: IncomingMessage,
  res: ServerResponse,
  options: StreamOptions,
): SseStream {
  res.writeHead(200, streamHeaders(req));
  if (req.method === 'HEAD') {
    res.end();
  } else {
    // `setImmediate` runs after this turn's callbacks and promise jobs, wherever the route is
    // (and after immediates queued before it, such as a fan-out slice that may write here).
    // No socket yet means an answer queued behind another on the same connection.
    if (res.socket !== null) {
      res.socket.cork();
      setImmediate(uncork, res.socket);
    }
    res.flushHeaders();
  }
  const stream = new SseStream(res, registry, options.maxBacklogBytes);
  stream.write(retryFrame(options.retryMs));
  return stream;
}

/** The `retry:` frame every stream starts with: built once and shared (see ./preframed-write.ts for why). */
let retry: { ms: number; frame: Buffer } | undefined;

function retryFrame(ms: number): Buffer {
  if (retry?.ms !== ms) retry = { ms, frame: Buffer.from(formatEvent({ retry: ms })) };
  return retry.frame;
}

function uncork(socket: Socket): void {
  socket.uncork();
}

/**
 * One open event stream. It writes whole frames only, so a heartbeat can never land inside a
 * frame, and it owns the one cleanup that runs when the connection closes, whoever closes it.
 *
 * Only `openStream` above makes one (the class is exported as a type, not as a value):
 * `write` may put bytes straight on the socket (./preframed-write.ts), so the status line and
 * headers must be there first, and `openStream` flushes them. To add a header of your own,
 * `res.setHeader` it before calling `openStream`.
 *
 * What a disconnect releases, all from `cleanup()` below, once:
 * - its place in the registry (./registry.ts): no more heartbeats or stall checks, and the
 *   heartbeat timer stops with the last stream;
 * - everything registered with `onClose`, in the order it was registered: first the
 *   per-address admission count (lib/http/stream-limits.ts, which registers it as the stream
 *   opens), then the route's own: the /events timer, or the hub subscription (lib/hub/), whose
 *   release counts the channel's listeners down, which stops a demo timer when the last
 *   listener leaves (lib/demos/demo-timer.ts);
 * - the backlog: unsent bytes die with the socket.
 * The request log line (lib/http/request-log.ts) is written on the same `close` event.
 */
class SseStream {
  readonly #res: ServerResponse;
  readonly #registry: StreamRegistry;
  readonly #maxBacklogBytes: number;
  /** Made on first use: memory per stream adds up, and most streams register few cleanups. */
  #cleanups: Array<(stream: SseStream) => void> | undefined;
  #closed = false;
  #closeReason: CloseReason = 'client';
  /** Set by every write, cleared by the heartbeat tick: a stream that wrote needs no ping. */
  wroteSinceTick = false;
  /** Heartbeat ticks in a row that found this stream's backlog stuck. */
  stalledTicks = 0;
  /** Backlog at the last tick, and bytes queued since: together they tell if any left. */
  backlogAtTick = 0;
  queuedSinceTick = 0;

  constructor(res: ServerResponse, registry: StreamRegistry, maxBacklogBytes: number) {
    this.#res = res;
    this.#registry = registry;
    this.#maxBacklogBytes = maxBacklogBytes;
    registry.add(this);
    // 'close' fires exactly once, for every way a response can end: the client went away,
    // we called end(), or we destroyed the socket. So it is the one place to clean up. One
    // shared listener (not a closure per stream) keeps each stream a little smaller.
    streamOf.set(res, this);
    res.on('close', onResponseClose);
    // Except for a response queued behind an earlier one on a pipelined connection (a client
    // may send its next request before the answer to the last one is over): it has no
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
    // Writes may go to the socket directly (see ./preframed-write.ts), so ask it too.
    return this.#res.writableNeedDrain || this.#res.socket?.writableNeedDrain === true;
  }

  /** Frames and sends one message. Throws `SseFormatError` for a message that cannot be framed. */
  send(message: SseMessage): boolean {
    return this.write(formatEvent(message));
  }

  /**
   * Writes frames that are already serialised (whole frames only); `sent`, if given, runs once
   * the bytes are in the kernel's hands, or when they never will be. Publishing serialises an
   * event once and hands the same bytes to every subscriber through this method. A Buffer must
   * not change once written: its HTTP chunk may be reused (./preframed-write.ts).
   *
   * `res.write()` never refuses data: it queues what the socket cannot take, and returns false
   * to say so. A client that stops reading would make that queue grow without end, so a client
   * that still has more than `maxBacklogBytes` unread when the next write comes is
   * disconnected; a browser reconnects and resumes with `Last-Event-ID`. Checking before the
   * write, not after, lets a client that keeps up take a burst larger than the bound; the
   * queue never exceeds the bound plus one write.
   */
  write(frames: string | Buffer, sent?: () => void): boolean {
    if (this.#closed || this.#res.writableEnded) {
      sent?.();
      return false;
    }
    // Bytes held back by openStream's cork were never offered to the client, so they say
    // nothing about whether it reads: a replay near the bound plus the headers would
    // otherwise cut a healthy new stream before its first byte.
    if (this.#res.writableLength > this.#maxBacklogBytes && !this.#res.socket?.writableCorked) {
      this.destroy('slow');
      sent?.();
      return false;
    }
    this.wroteSinceTick = true;
    this.queuedSinceTick += typeof frames === 'string' ? Buffer.byteLength(frames) : frames.length;
    // The plain way is `this.#res.write(frames)`, and it is what this does in effect; the
    // fast path frames the HTTP chunk once per shared buffer (see the figure in that file).
    writePreframed(this.#res, frames, sent);
    return true;
  }

  /**
   * Registers work to undo when the stream closes (unsubscribe, clear a timer). It is called
   * with this stream, so one shared function can clean up after every stream, finding what it
   * needs by the stream, instead of a closure per stream that lives as long as its client.
   * Admission and the hub subscription do so (and the request log, on its own `close`
   * listener, the same way): against a closure each, 230 bytes less heap per open /stream
   * (5,000 streams, after a full collection).
   */
  onClose(cleanup: (stream: SseStream) => void): void {
    if (this.#closed) cleanup(this);
    // A new array of exactly the right length, not push(): push's first growth makes room
    // for 16 more entries, 128 bytes that an open stream would keep for nothing.
    else this.#cleanups = this.#cleanups === undefined ? [cleanup] : [...this.#cleanups, cleanup];
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
    for (const cleanup of this.#cleanups ?? []) cleanup(this);
    this.#cleanups = undefined;
  }
}

const streamOf = new WeakMap<ServerResponse, SseStream>();

/** True when `res` answers with an event stream (`openStream` made it). */
export function isEventStream(res: ServerResponse): boolean {
  return streamOf.has(res);
}

/** An emitter calls its listeners with itself as `this`: here, the response that closed. */
function onResponseClose(this: ServerResponse): void {
  streamOf.get(this)?.cleanup();
}
