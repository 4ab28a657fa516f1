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
 * The same tick finds stalled clients: if a stream's backlog has not drained for
 * `stallTicks` ticks in a row, the client is not reading (or is gone without a goodbye), and
 * the stream is cut. (A peer that vanished without a FIN is finally declared dead by the
 * kernel when its retransmissions time out, about 15 minutes on Linux; a heartbeat is what
 * makes the kernel notice at all, since an idle socket never retransmits anything.)
 */
import { formatEvent } from './format.ts';
import type { CloseReason, SseStream } from './stream.ts';

const HEARTBEAT = Buffer.from(formatEvent({ comment: 'heartbeat' }));

export interface RegistryOptions {
  /** How often idle streams get a heartbeat comment (0 = never). */
  heartbeatMs: number;
  /** Ticks a backlog may stay stuck before the stream is cut. */
  stallTicks?: number;
}

export class StreamRegistry {
  readonly #streams = new Set<SseStream>();
  readonly #heartbeatMs: number;
  readonly #stallTicks: number;
  #timer: NodeJS.Timeout | undefined;
  /** How many streams ended, by reason. */
  readonly closed: Record<CloseReason, number> = { client: 0, done: 0, slow: 0, stalled: 0, shutdown: 0 };

  constructor(options: RegistryOptions) {
    this.#heartbeatMs = options.heartbeatMs;
    this.#stallTicks = options.stallTicks ?? 2;
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
        if (stream.stalledTicks >= this.#stallTicks) {
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
