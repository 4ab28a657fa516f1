/**
 * One channel's replay history in this process (./memory-store.ts): its last N events, oldest
 * first, in a fixed-size ring, each charged to a byte budget (./history-budget.ts).
 *
 * Events only ever leave from the old end: when the ring is full, when the budget evicts, or
 * when the channel is forgotten. So what is kept is always every event of the channel after
 * some id, and that id, `evictedUpTo`, is all replay needs to tell "nothing happened" from
 * "it is gone" (and answer the second with `reset`, never a silent gap).
 */
import type { HistoryBudget, StoredEvent } from './history-budget.ts';
import { eventCost } from './history-budget.ts';
import type { HubEvent } from './pubsub.ts';

export class History {
  readonly #ring: Array<StoredEvent | undefined>;
  #start = 0;
  #count = 0;
  /** Id of the newest event that left (0 when none has). */
  evictedUpTo = 0;

  constructor(capacity: number) {
    this.#ring = new Array<StoredEvent | undefined>(capacity);
  }

  /** Keeps `event` as the newest, charged to `budget`; the oldest leaves when the ring is full. */
  push(event: HubEvent, budget: HistoryBudget): void {
    const capacity = this.#ring.length;
    if (capacity === 0) {
      this.evictedUpTo = event.id;
      return;
    }
    if (this.#count === capacity) this.#dropOldest();
    const stored: StoredEvent = { event, cost: eventCost(event), history: this, budget, older: undefined, newer: undefined };
    this.#ring[(this.#start + this.#count) % capacity] = stored;
    this.#count += 1;
    // Last, because charging may evict, this very event included.
    budget.charge(stored);
  }

  /** Drops every event up to and including `id` (the budget is evicting): replays from before it get `reset`. */
  dropThrough(id: number): void {
    while (this.#count > 0 && this.#at(0).event.id <= id) this.#dropOldest();
  }

  /** Drops every event (the channel is being forgotten); returns the newest id it had. */
  clear(): number {
    const newest = this.newestId;
    while (this.#count > 0) this.#dropOldest();
    return newest;
  }

  #dropOldest(): void {
    const oldest = this.#at(0);
    this.#ring[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.#ring.length;
    this.#count -= 1;
    this.evictedUpTo = oldest.event.id;
    oldest.budget.release(oldest);
  }

  #at(index: number): StoredEvent {
    return this.#ring[(this.#start + index) % this.#ring.length]!;
  }

  /** Events with an id above `after`, oldest first (binary search: ids only grow). */
  after(after: number): HubEvent[] {
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#at(middle).event.id <= after) low = middle + 1;
      else high = middle;
    }
    const events: HubEvent[] = [];
    for (let index = low; index < this.#count; index++) events.push(this.#at(index).event);
    return events;
  }

  /** Every event kept, oldest first, with the budget that pays for it (for saving). */
  kept(): StoredEvent[] {
    return Array.from({ length: this.#count }, (_, index) => this.#at(index));
  }

  get newestId(): number {
    return this.#count === 0 ? this.evictedUpTo : this.#at(this.#count - 1).event.id;
  }
}
