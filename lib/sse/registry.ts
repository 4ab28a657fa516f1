/**
 * Every open stream, with one shared heartbeat timer.
 *
 * Proxies and load balancers close connections that carry no bytes for a while (nginx after
 * 60 s, many cloud balancers sooner), so an idle stream gets a comment line every
 * `heartbeatMs`. One timer serves all streams instead of one timer per client: ten thousand
 * clients cost one timer, and the timer runs only while a stream is open. A stream that wrote
 * anything during the last tick needs no heartbeat, so an idle stream hears from us at least
 * every two ticks. A heartbeat is a whole frame of its own (a comment), written between
 * frames, never inside one.
 *
 * A tick visits the streams in slices, with a turn of the event loop between them, for the
 * reason the hub writes in slices: nothing else is served while a loop runs. Measured on the
 * bench's VM with 19,000 idle streams and a heartbeat a second (`monitorEventLoopDelay`): one
 * pass over all of them blocked the loop for 225-258 ms, every second; in slices of 256, the
 * longest block was 9 ms.
 *
 * The same tick finds stalled clients: if a stream's backlog has not drained for
 * `stallTicks` ticks in a row, the client is not reading (or is gone without a goodbye), and
 * the stream is cut. (A peer that vanished without a FIN is finally declared dead by the
 * kernel when its retransmissions time out, about 15 minutes on Linux; a heartbeat is what
 * makes the kernel notice at all, since an idle socket never retransmits anything.)
 */
import { formatEvent } from './format.ts';
import type { CloseReason, SseStream } from './stream.ts';

const HEARTBEAT = Buffer.from(formatEvent({ comment: 'heartbeat' }));

/** Streams a tick visits before the event loop gets a turn: about 3 ms of heartbeat writes. */
const STREAMS_PER_SLICE = 256;

export interface RegistryOptions {
  /** How often idle streams get a heartbeat comment (0 = never). */
  heartbeatMs: number;
  /** Ticks a backlog may stay stuck before the stream is cut. */
  stallTicks?: number;
  /** Streams visited per turn of the event loop (tests make it small). */
  streamsPerSlice?: number;
}

export class StreamRegistry {
  readonly #streams = new Set<SseStream>();
  readonly #heartbeatMs: number;
  readonly #stallTicks: number;
  readonly #streamsPerSlice: number;
  #timer: NodeJS.Timeout | undefined;
  /**
   * The streams the tick under way has yet to visit. A Set's iterator is live: it skips
   * streams removed meanwhile and reaches streams added meanwhile.
   */
  #unvisited: IterableIterator<SseStream> | undefined;
  /** How many streams ended, by reason. */
  readonly closed: Record<CloseReason, number> = { client: 0, done: 0, slow: 0, stalled: 0, shutdown: 0 };

  constructor(options: RegistryOptions) {
    this.#heartbeatMs = options.heartbeatMs;
    this.#stallTicks = options.stallTicks ?? 2;
    this.#streamsPerSlice = options.streamsPerSlice ?? STREAMS_PER_SLICE;
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
    if (this.#timer === undefined && this.#heartbeatMs > 0) {
      this.#timer = setInterval(() => this.#tick(), this.#heartbeatMs);
      // The timer alone should never keep the process alive: the server does that.
      this.#timer.unref();
    }
  }

  remove(stream: SseStream, reason: CloseReason): void {
    if (!this.#streams.delete(stream)) return;
    this.closed[reason] += 1;
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * Ends every stream, first telling clients when to come back (graceful shutdown). The
   * `retry:` repeats what each stream was told when it opened, so with the default it changes
   * nothing; it is the place to ask for a longer wait, for clients to back off while the
   * server restarts.
   */
  endAll(retryMs: number): void {
    const goodbye = formatEvent({ retry: retryMs });
    for (const stream of this.#streams) {
      stream.write(goodbye);
      stream.end('shutdown');
    }
  }

  #tick(): void {
    // A tick still under way when the next is due (only with hundreds of thousands of
    // streams) simply goes on: the streams it has not reached yet get this one's visit, and
    // those it already visited wait for the next tick.
    if (this.#unvisited !== undefined) return;
    this.#unvisited = this.#streams.values();
    this.#visitSlice();
  }

  /** An arrow function, so that `setImmediate` can be handed it as is, with no closure per slice. */
  readonly #visitSlice = (): void => {
    let visited = 0;
    // Leaving this loop early keeps the iterator's place: a Set's iterator has no return().
    for (const stream of this.#unvisited!) {
      this.#visit(stream);
      if (++visited === this.#streamsPerSlice) {
        setImmediate(this.#visitSlice);
        return;
      }
    }
    this.#unvisited = undefined;
  };

  #visit(stream: SseStream): void {
    // Bytes that left the backlog since the last tick: what it held, plus what was queued,
    // minus what it holds now. None left while a write waits for a drain: no progress.
    const sent = stream.backlogAtTick + stream.queuedSinceTick - stream.backlogBytes;
    stream.backlogAtTick = stream.backlogBytes;
    stream.queuedSinceTick = 0;
    if (stream.waitingForDrain && sent <= 0) {
      stream.stalledTicks += 1;
      if (stream.stalledTicks >= this.#stallTicks) {
        stream.destroy('stalled');
        return;
      }
    } else {
      stream.stalledTicks = 0;
    }
    if (!stream.wroteSinceTick) stream.write(HEARTBEAT);
    stream.wroteSinceTick = false;
  }
}
