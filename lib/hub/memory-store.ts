/**
 * The hub's storage in this process: ids, and each channel's recent events for replay.
 *
 * - Ids start at the time in ms rather than at 1: after a crash (no saved history), an id the
 *   browser kept from the previous run is below our first id, so the hub knows it is stale and
 *   sends `reset`, instead of mistaking it for a position in our own, unrelated history.
 * - Each channel keeps its last `historySize` events in a ring (./history.ts); the newest id
 *   that fell out is remembered, so replay can tell "nothing happened" from "it is gone".
 * - All of history together stays within `maxBytes` (./history-budget.ts): past it, the oldest
 *   events go first, whichever channel they are in, and replays that needed them get `reset`.
 * - At most `maxChannels` channels are remembered; past that, the least recently published one
 *   that nobody here follows is forgotten, and the newest id it had is kept, so a replay on it
 *   (or on a channel of that name created again later) gets `reset`, not a silent gap.
 * - A graceful shutdown saves ids and history (`save`), and the next run carries on from them.
 */
import { formatEvent } from '../sse/format.ts';
import { History } from './history.ts';
import { HistoryBudget } from './history-budget.ts';
import type { HubEvent, PublishInput } from './pubsub.ts';
import type { HistoryView, HubFeed, HubStore } from './store.ts';

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
  /** Bytes all history may take (./history-budget.ts); past it, the oldest events go first. */
  maxBytes: number;
  /** Where ids start. Defaults to the time in ms, so ids from an earlier run are recognisably older. */
  firstId?: number;
  /** History an earlier run saved at shutdown (`save`): ids and replay carry on from it. */
  saved?: SavedHistory;
}

export class MemoryStore implements HubStore {
  readonly #historySize: number;
  readonly #maxChannels: number;
  readonly #budget: HistoryBudget;
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
    this.#budget = new HistoryBudget(options.maxBytes);
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

  /** Bytes history holds now, as the budget counts them (never above `maxBytes`). */
  get historyBytes(): number {
    return this.#budget.bytes;
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
    this.#channel(input.channel).push(event, this.#budget);
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
    // Channels first, in the saved order (least recently used first, as they were)...
    const restored: Array<{ history: History; event: HubEvent }> = [];
    for (const { name, evictedUpTo, events } of saved.channels) {
      const history = new History(this.#historySize);
      history.evictedUpTo = evictedUpTo;
      this.#channels.set(name, history);
      for (const { id, event, data, key } of events) {
        // Frames are rebuilt rather than stored: the file stays readable, and small.
        const frame = Buffer.from(formatEvent({ event, id: String(id), data }));
        restored.push({ history, event: { id, channel: name, event, data, key, frame } });
      }
    }
    // ...then the events in id order, as they were published: the budget evicts in that order...
    restored.sort((a, b) => a.event.id - b.event.id);
    for (const { history, event } of restored) history.push(event, this.#budget);
    // ...and last, if MAX_CHANNELS is smaller than last run's, forget as publishing would have.
    while (this.#channels.size > this.#maxChannels) this.#forgetIdleChannel();
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
      // Its events leave the budget too.
      this.#forgottenUpTo = Math.max(this.#forgottenUpTo, history.clear());
      this.#channels.delete(name);
      return;
    }
  }
}
