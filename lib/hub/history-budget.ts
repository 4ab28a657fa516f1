/**
 * A byte budget for replay history, shared by many channels (./memory-store.ts): every stored
 * event is charged what it costs, and past the budget the oldest events go first, whichever
 * channel holds them. Without it, history is bounded only by channels × events per channel ×
 * event size, which at the defaults is hundreds of gigabytes.
 *
 * - **Oldest first, in O(1).** Ids only grow, so events charged in publish order are charged
 *   in id order: one list, oldest at the head, newest at the tail, is the eviction order. Over
 *   budget, the head goes. (Finding the oldest among channels would take a scan or a heap.)
 * - **No silent gaps.** An evicted event leaves its channel together with the channel's older
 *   events (a replay starting before them would need the evicted one anyway), and the channel
 *   remembers the newest id it lost, so a replay that needed it gets `reset` (./history.ts).
 * - **Leaving history means leaving the list.** An event also leaves when its channel's ring is
 *   full or the channel is forgotten; it is unlinked from here at once, in O(1), so the count
 *   is exact and the list holds only events still stored.
 * - **What an event costs.** Its frame, its text (kept for the history file, no more bytes than
 *   the frame), and the objects around them. Measured with `process.memoryUsage()` on Node 20,
 *   one event holds `2 × frame + 320` bytes to within 15%, from one-character chat messages to
 *   8 KiB events (and less, never more, for text such as "é" that UTF-8 spells longer than
 *   JavaScript does). So the budget is about what history really takes in memory.
 */
import type { HubEvent } from './pubsub.ts';
import type { History } from './history.ts';

/** Bytes charged for each event beside its frame and text: the objects that hold them. */
const EVENT_OVERHEAD_BYTES = 320;

/** What an event is charged. */
export function eventCost(event: HubEvent): number {
  return 2 * event.frame.length + EVENT_OVERHEAD_BYTES;
}

/** One event in history: in its channel's ring, and in its budget's list, oldest to newest. */
export interface StoredEvent {
  readonly event: HubEvent;
  readonly cost: number;
  /** The channel holding it. */
  readonly history: History;
  /** The budget that pays for it. */
  readonly budget: HistoryBudget;
  older: StoredEvent | undefined;
  newer: StoredEvent | undefined;
}

export class HistoryBudget {
  readonly #maxBytes: number;
  #bytes = 0;
  #oldest: StoredEvent | undefined;
  #newest: StoredEvent | undefined;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes charged now: never above `maxBytes` once `charge` returns. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Charges an event its channel just stored (the newest id so far, so it goes at the tail),
   * then evicts from the head until the budget holds. That may evict the event itself, when it
   * is larger than the whole budget: live subscribers still get it, replays get `reset`.
   */
  charge(stored: StoredEvent): void {
    stored.older = this.#newest;
    if (this.#newest) this.#newest.newer = stored;
    else this.#oldest = stored;
    this.#newest = stored;
    this.#bytes += stored.cost;
    while (this.#bytes > this.#maxBytes && this.#oldest) {
      // Drops the oldest and whatever is older in its channel; each one comes back to `release`.
      this.#oldest.history.dropThrough(this.#oldest.event.id);
    }
  }

  /** An event left its channel: unlink it, and its bytes are free again. */
  release(stored: StoredEvent): void {
    if (stored.older) stored.older.newer = stored.newer;
    else this.#oldest = stored.newer;
    if (stored.newer) stored.newer.older = stored.older;
    else this.#newest = stored.older;
    stored.older = stored.newer = undefined;
    this.#bytes -= stored.cost;
  }
}
