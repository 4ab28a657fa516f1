/**
 * The hub's storage in this process: ids, and each channel's recent events for replay.
 *
 * - Ids start at the time in ms rather than at 1: after a crash (no saved history), an id the
 *   browser kept from the previous run is below our first id, so the hub knows it is stale and
 *   sends `reset`, instead of mistaking it for a position in our own, unrelated history.
 * - Each channel keeps its last `historySize` events in a ring; the newest id that fell out is
 *   remembered, so replay can tell "nothing happened" from "it is gone".
 * - At most `maxChannels` channels are remembered; past that, the least recently published one
 *   that nobody here follows is forgotten, and the newest id it had is kept, so a replay on it
 *   (or on a channel of that name created again later) gets `reset`, not a silent gap.
 * - A graceful shutdown saves ids and history (`save`), and the next run carries on from them.
 */
import { formatEvent } from '../sse/format.ts';
import type { HubEvent, PublishInput } from './pubsub.ts';
import type { HistoryView, HubFeed, HubStore } from './store.ts';

/** The last N events of one channel, oldest first, in a fixed-size ring. */
class History {
  readonly #ring: Array<HubEvent | undefined>;
  #start = 0;
  #count = 0;
  /** Id of the newest event that fell out of the ring (0 when none has). */
  evictedUpTo = 0;

  constructor(capacity: number) {
    this.#ring = new Array<HubEvent | undefined>(capacity);
  }

  push(event: HubEvent): void {
    const capacity = this.#ring.length;
    if (capacity === 0) {
      this.evictedUpTo = event.id;
      return;
    }
    if (this.#count === capacity) {
      this.evictedUpTo = this.#ring[this.#start]!.id;
      this.#ring[this.#start] = event;
      this.#start = (this.#start + 1) % capacity;
    } else {
      this.#ring[(this.#start + this.#count) % capacity] = event;
      this.#count += 1;
    }
  }

  #at(index: number): HubEvent {
    return this.#ring[(this.#start + index) % this.#ring.length]!;
  }

  /** Events with an id above `after`, oldest first (binary search: ids only grow). */
  after(after: number): HubEvent[] {
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#at(middle).id <= after) low = middle + 1;
      else high = middle;
    }
    const events: HubEvent[] = [];
    for (let index = low; index < this.#count; index++) events.push(this.#at(index));
    return events;
  }

  get newestId(): number {
    return this.#count === 0 ? this.evictedUpTo : this.#at(this.#count - 1).id;
  }
}

/** The ids and history of a memory store, as saved at a graceful shutdown for the next run. */
export interface SavedHistory {
  firstId: number;
  lastId: number;
  forgottenUpTo: number;
  channels: Array<{
    name: string;
    evictedUpTo: number;
    events: Array<{ id: number; event?: string | undefined; data: string; key?: string | undefined }>;
  }>;
}

export interface MemoryStoreOptions {
  historySize: number;
  /** Channels remembered at most; past this, the least recently used idle channel is forgotten. */
  maxChannels: number;
  /** Where ids start. Defaults to the time in ms, so ids from an earlier run are recognisably older. */
  firstId?: number;
  /** History an earlier run saved at shutdown (`save`): ids and replay carry on from it. */
  saved?: SavedHistory;
}

export class MemoryStore implements HubStore {
  readonly #historySize: number;
  readonly #maxChannels: number;
  /** Channels in least-recently-published order (a Map iterates in insertion order). */
  readonly #channels = new Map<string, History>();
  /** Channels someone in this process follows: never forgotten while followed. */
  readonly #followed = new Set<string>();
  readonly #firstId: number;
  #lastId: number;
  /** The newest id of any channel that was forgotten to stay under `maxChannels`. */
  #forgottenUpTo = 0;
  #feed: HubFeed | undefined;

  constructor(options: MemoryStoreOptions) {
    this.#historySize = options.historySize;
    this.#maxChannels = options.maxChannels;
    this.#firstId = options.saved?.firstId ?? options.firstId ?? Date.now();
    this.#lastId = options.saved?.lastId ?? this.#firstId - 1;
    if (options.saved) this.#restore(options.saved);
  }

  attach(feed: HubFeed): void {
    this.#feed = feed;
  }

  /** One process is the whole system: the store is always there, and every lease is ours. */
  readonly available = true;

  async whenAvailable(): Promise<void> {}

  async holdLease(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}

  get lastId(): number {
    return this.#lastId;
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  /**
   * Stores the event and hands it to the feed before returning: the work is done before the
   * first await, so events keep the order of the calls, and state that changes together with
   * a publish (the order store) is always "as of `lastId`".
   */
  async append(input: PublishInput): Promise<number> {
    const id = this.#lastId + 1;
    const frame = Buffer.from(formatEvent({ event: input.event, id: String(id), data: input.data }));
    this.#lastId = id;
    const event: HubEvent = { id, channel: input.channel, event: input.event, data: input.data, key: input.key, frame };
    this.#channel(input.channel).push(event);
    this.#feed?.receive(event);
    return id;
  }

  /** Read in the call itself, so the view is of the instant the hub asked. */
  async read(channels: readonly string[], after: number): Promise<HistoryView> {
    const events: HubEvent[] = [];
    const evictedUpTo: number[] = [];
    for (const name of channels) {
      const history = this.#channels.get(name);
      evictedUpTo.push(history ? history.evictedUpTo : this.#forgottenUpTo);
      if (history) events.push(...history.after(after));
    }
    // Each channel's history is in id order; merging several needs one sort.
    if (channels.length > 1) events.sort((a, b) => a.id - b.id);
    return { asOf: this.#lastId, origin: this.#firstId - 1, evictedUpTo, events };
  }

  async position(): Promise<number> {
    return this.#lastId;
  }

  async follow(channel: string): Promise<void> {
    this.#followed.add(channel);
  }

  unfollow(channel: string): void {
    this.#followed.delete(channel);
  }

  /**
   * The ids and history to hand to the next run. With them, a browser that reconnects to the
   * restarted server resumes where it was instead of getting `reset`.
   */
  save(): SavedHistory {
    return {
      firstId: this.#firstId,
      lastId: this.#lastId,
      forgottenUpTo: this.#forgottenUpTo,
      channels: [...this.#channels].map(([name, history]) => ({
        name,
        evictedUpTo: history.evictedUpTo,
        events: history.after(0).map(({ id, event, data, key }) => ({ id, event, data, key })),
      })),
    };
  }

  #restore(saved: SavedHistory): void {
    this.#forgottenUpTo = saved.forgottenUpTo;
    for (const { name, evictedUpTo, events } of saved.channels) {
      const history = this.#channel(name);
      history.evictedUpTo = evictedUpTo;
      for (const { id, event, data, key } of events) {
        // Frames are rebuilt rather than stored: the file stays readable, and small.
        history.push({ id, channel: name, event, data, key, frame: Buffer.from(formatEvent({ event, id: String(id), data })) });
      }
    }
  }

  /** The channel's history, created if new, and moved to the back of the least-recently-used order. */
  #channel(name: string): History {
    let history = this.#channels.get(name);
    if (history) {
      this.#channels.delete(name);
    } else {
      history = new History(this.#historySize);
      // This may be a forgotten channel coming back: its old events are gone, so a replay
      // from before the newest forgotten id must get reset, not a silent gap.
      history.evictedUpTo = this.#forgottenUpTo;
      if (this.#channels.size >= this.#maxChannels) this.#forgetIdleChannel();
    }
    this.#channels.set(name, history);
    return history;
  }

  /** Forgets the least recently used channel nobody follows; later replays on it get `reset`. */
  #forgetIdleChannel(): void {
    for (const [name, history] of this.#channels) {
      if (this.#followed.has(name)) continue;
      this.#forgottenUpTo = Math.max(this.#forgottenUpTo, history.newestId);
      this.#channels.delete(name);
      return;
    }
  }
}
