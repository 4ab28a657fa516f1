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
 * - Both limits are shared out (./public-share.ts): the public's events and channels (the chat)
 *   get a quarter of each, in a table and a budget of their own, and publishers the rest, so a
 *   flood of chat pushes out chat, and publishers' history only on channels the chat also
 *   posted on (see ./public-share.ts). (One `forgottenUpTo` serves both tables: a name
 *   nobody remembers may have been either's, so a new channel starts after every forgotten id.
 *   That costs a client of a brand-new channel a `reset` at worst, never a gap.)
 * - A graceful shutdown saves ids and history (`save`), and the next run carries on from them.
 */
import { formatEvent } from '../sse/format.ts';
import { History } from './history.ts';
import { HistoryBudget } from './history-budget.ts';
import { shareOut } from './public-share.ts';
import type { HubEvent, PublishInput } from './pubsub.ts';
import type { HistoryView, HubFeed, HubStore } from './store.ts';

/** The ids and history of a memory store, as saved at a graceful shutdown for the next run. */
export interface SavedHistory {
  firstId: number;
  lastId: number;
  forgottenUpTo: number;
  channels: Array<{
    name: string;
    /** In the public's table (absent in files from before the tables: the publishers'). */
    public?: boolean;
    evictedUpTo: number;
    events: Array<{ id: number; event?: string | undefined; data: string; key?: string | undefined; public?: boolean }>;
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

/** The publishers' channels, or the public's: each table with its own cap and byte budget. */
interface ChannelTable {
  /** In least-recently-published order (a Map iterates in insertion order). */
  readonly channels: Map<string, History>;
  readonly maxChannels: number;
  /** Pays for the events this side writes, whichever table their channel is in. */
  readonly budget: HistoryBudget;
}

export class MemoryStore implements HubStore {
  readonly #historySize: number;
  readonly #publishers: ChannelTable;
  readonly #public: ChannelTable;
  /** Channels someone in this process follows: never forgotten while followed. */
  readonly #followed = new Set<string>();
  readonly #firstId: number;
  #lastId: number;
  /** The newest id of any channel that was forgotten to stay under its table's cap. */
  #forgottenUpTo = 0;
  #feed: HubFeed | undefined;

  constructor(options: MemoryStoreOptions) {
    this.#historySize = options.historySize;
    const channels = shareOut(options.maxChannels);
    const bytes = shareOut(options.maxBytes);
    this.#publishers = { channels: new Map(), maxChannels: channels.publishers, budget: new HistoryBudget(bytes.publishers) };
    this.#public = { channels: new Map(), maxChannels: channels.public, budget: new HistoryBudget(bytes.public) };
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
    return this.#publishers.channels.size + this.#public.channels.size;
  }

  /** Bytes history holds now, as the budgets count them (never above `maxBytes`). */
  get historyBytes(): number {
    return this.#publishers.budget.bytes + this.#public.budget.bytes;
  }

  /**
   * Stores the event and hands it to the feed before returning: the work is done before the
   * first await, so events keep the order of the calls, and state that changes together with
   * a publish (the order store) is always "as of `lastId`".
   */
  async append(input: PublishInput): Promise<number> {
    const id = this.#lastId + 1;
    // Framed first: an event that cannot be framed is refused here, before it is stored.
    const frame = Buffer.from(formatEvent({ event: input.event, id: String(id), data: input.data }));
    this.#lastId = id;
    const event: HubEvent = { id, channel: input.channel, event: input.event, data: input.data, key: input.key, frame };
    const writer = input.public ? this.#public : this.#publishers;
    this.#channel(input.channel, writer).push(event, writer.budget);
    this.#feed?.receive(event);
    return id;
  }

  /** Read in the call itself, so the view is of the instant the hub asked. */
  async read(channels: readonly string[], after: number): Promise<HistoryView> {
    const events: HubEvent[] = [];
    const evictedUpTo: number[] = [];
    for (const name of channels) {
      const history = this.#find(name);
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

  followNow(channels: readonly string[]): number {
    for (const channel of channels) this.#followed.add(channel);
    return this.#lastId;
  }

  unfollow(channel: string): void {
    this.#followed.delete(channel);
  }

  /**
   * The ids and history to hand to the next run. With them, a browser that reconnects to the
   * restarted server resumes where it was instead of getting `reset`.
   */
  save(): SavedHistory {
    const channels = (table: ChannelTable) =>
      [...table.channels].map(([name, history]) => ({
        name,
        public: table === this.#public,
        evictedUpTo: history.evictedUpTo,
        events: history.kept().map(({ event: { id, event, data, key }, budget }) => ({
          id,
          event,
          data,
          key,
          // Written only when true (JSON leaves out undefined), to keep the file small.
          public: budget === this.#public.budget || undefined,
        })),
      }));
    return {
      firstId: this.#firstId,
      lastId: this.#lastId,
      forgottenUpTo: this.#forgottenUpTo,
      channels: [...channels(this.#publishers), ...channels(this.#public)],
    };
  }

  #restore(saved: SavedHistory): void {
    this.#forgottenUpTo = saved.forgottenUpTo;
    // Channels first, in the saved order (least recently used first, as they were)...
    const restored: Array<{ history: History; event: HubEvent; budget: HistoryBudget }> = [];
    for (const { name, public: byPublic, evictedUpTo, events } of saved.channels) {
      const history = new History(this.#historySize);
      history.evictedUpTo = evictedUpTo;
      (byPublic ? this.#public : this.#publishers).channels.set(name, history);
      for (const { id, event, data, key, public: writtenByPublic } of events) {
        // Frames are rebuilt rather than stored: the file stays readable, and small.
        const frame = Buffer.from(formatEvent({ event, id: String(id), data }));
        const budget = (writtenByPublic ? this.#public : this.#publishers).budget;
        restored.push({ history, event: { id, channel: name, event, data, key, frame }, budget });
      }
    }
    // ...then the events in id order, as they were published: the budgets evict in that order...
    restored.sort((a, b) => a.event.id - b.event.id);
    for (const { history, event, budget } of restored) history.push(event, budget);
    // ...and last, if MAX_CHANNELS is smaller than last run's, forget as publishing would have.
    for (const table of [this.#publishers, this.#public]) {
      while (table.channels.size > table.maxChannels) this.#forgetIdleChannel(table);
    }
  }

  #find(name: string): History | undefined {
    return this.#publishers.channels.get(name) ?? this.#public.channels.get(name);
  }

  /**
   * The channel's history, created if new, and moved to the back of its table's
   * least-recently-used order. A channel is the public's until a publisher writes to it; then
   * it moves to the publishers' table for good (./public-share.ts).
   */
  #channel(name: string, writer: ChannelTable): History {
    const owner = this.#publishers.channels.has(name) ? this.#publishers : this.#public.channels.has(name) ? this.#public : undefined;
    const table = owner === this.#publishers || writer === this.#publishers ? this.#publishers : this.#public;
    let history = owner?.channels.get(name);
    // Deleted and set again below: a Map keeps insertion order, so that is the move to the back.
    if (history) {
      owner!.channels.delete(name);
    } else {
      history = new History(this.#historySize);
      // This may be a forgotten channel coming back: its old events are gone, so a replay
      // from before the newest forgotten id must get reset, not a silent gap.
      history.evictedUpTo = this.#forgottenUpTo;
    }
    if (table.channels.size >= table.maxChannels) this.#forgetIdleChannel(table);
    table.channels.set(name, history);
    return history;
  }

  /** Forgets the table's least recently used channel nobody follows; later replays on it get `reset`. */
  #forgetIdleChannel(table: ChannelTable): void {
    for (const [name, history] of table.channels) {
      if (this.#followed.has(name)) continue;
      // Its events leave their budgets too.
      this.#forgottenUpTo = Math.max(this.#forgottenUpTo, history.clear());
      table.channels.delete(name);
      return;
    }
  }
}
