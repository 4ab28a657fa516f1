/**
 * The hub: publish/subscribe over named channels, with history for `Last-Event-ID` replay.
 *
 * This is what Flask-SSE does with Redis, done in one process:
 * - every event gets an id from one ordered id space, so a single `Last-Event-ID` tells where
 *   a connection following several channels left off in all of them;
 * - each channel keeps its last `historySize` events; a reconnecting client gets what it
 *   missed, in order and without duplicates, then the live stream;
 * - when history no longer reaches back far enough, the client gets an explicit `reset`
 *   event instead of a silent gap, so it knows to refetch its state;
 * - an event is serialised once, and the same bytes go to every subscriber.
 *
 * Fan-out is batched: events published during one turn of the event loop are delivered
 * together on the next (`setImmediate`), one write per subscriber per turn instead of one per
 * event. Subscribers with the same channels share one concatenated buffer.
 *
 * `PubSub` is what the routes and demos depend on. Two hubs implement it: `Hub` here, in one
 * process and in memory, and `RedisHub` (lib/redis-hub.ts), which shares channels, ids and
 * history between processes through Redis.
 */
import { ListenerCounts } from './listener-counts.ts';
import { formatEvent } from '../sse/format.ts';

/** A value, or a promise of one: the in-process hub answers at once, Redis answers later. */
export type Awaitable<T> = T | Promise<T>;

/** An event as the hub stores it. */
export interface HubEvent {
  /** Position in the hub's one id space; also the SSE `id:` field. */
  id: number;
  channel: string;
  event: string | undefined;
  data: string;
  /** Optional routing key: a subscriber may ask for only the events with its key. */
  key: string | undefined;
  /** The complete SSE frame, serialised once at publish time. */
  frame: Buffer;
}

export interface PublishInput {
  channel: string;
  event?: string;
  data: string;
  key?: string;
}

/** Anything frames can be written to; an `SseStream` in practice. */
export interface Subscriber {
  write(frames: Buffer): boolean;
}

/** State sent whole instead of replay: frames that describe it as of event `upTo`. */
export interface Snapshot {
  /** Every event up to this id is reflected in the frames, and none after it. */
  upTo: number;
  /** Complete SSE frames, each carrying `id: upTo`. */
  frames: string;
}

export interface SubscribeOptions {
  channels: readonly string[];
  /** The id the client saw last (already checked to be a whole number), if it said. */
  lastEventId?: number;
  /** Deliver only events published with this key. */
  key?: string;
  /**
   * For state that can be sent whole (an order's status): frames describing the state, sent
   * instead of the id-only frame to a new client and instead of `reset` when replay cannot be
   * complete. `current` is the newest id this hub has delivered; state that changes only
   * together with a publish on this same hub is "as of `current`" and can answer at once (the
   * in-process hub needs that). State in shared storage reads its own `upTo` atomically with
   * the state, and answers with a promise.
   */
  snapshot?: (current: number) => Awaitable<Snapshot>;
}

/** Counters for /metrics. */
export interface HubStats {
  published: number;
  delivered: number;
  resets: number;
}

/**
 * What callers need from a hub, whichever one runs: publish, subscribe with replay, and the
 * listener counts that start and stop the demo timers.
 */
export interface PubSub {
  /**
   * Stores an event and delivers it to every subscriber of its channel; resolves with its id
   * once it is stored. Rejects with `SseFormatError` if it cannot be framed, and (Redis) with
   * a 503 `HttpError` while the store is unreachable.
   */
  publish(input: PublishInput): Promise<{ id: number }>;
  /**
   * Attaches a subscriber: what it missed since `lastEventId` (or a `reset`, or a snapshot),
   * then live events, with no gap and no duplicate. Returns the detach function at once, so
   * the caller can register it before anything else can go wrong; replay may finish later.
   */
  subscribe(subscriber: Subscriber, options: SubscribeOptions): () => void;
  /** Connections following `channel` in this process. */
  listenersOf(channel: string): number;
  /** Calls `watcher(true)` on a channel's first listener here, `watcher(false)` on its last. */
  onDemand(channel: string, watcher: (listening: boolean) => void): () => void;
  /**
   * Takes or renews the lease `name` for `ttlMs`; true while this process holds it. With many
   * processes, only the holder runs a demo timer, so the ticker does not tick once per process.
   */
  holdLease(name: string, ttlMs: number): Awaitable<boolean>;
  /** Delivers every event received so far now, rather than at the end of this turn. */
  flush(): void;
  /** False while the shared store is unreachable (always true in one process). */
  readonly available: boolean;
  /** The newest id this process has handed out or seen. */
  readonly lastId: number;
  readonly subscriberCount: number;
  readonly channelCount: number;
  readonly stats: HubStats;
  /** Lets go of connections (Redis); the in-process hub has none. */
  close(): Promise<void>;
}

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

  /** Events with `after < id <= upTo`, oldest first (binary search: ids only grow). */
  between(after: number, upTo: number): HubEvent[] {
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#at(middle).id <= after) low = middle + 1;
      else high = middle;
    }
    const events: HubEvent[] = [];
    for (let index = low; index < this.#count && this.#at(index).id <= upTo; index++) events.push(this.#at(index));
    return events;
  }

  get newestId(): number {
    return this.#count === 0 ? this.evictedUpTo : this.#at(this.#count - 1).id;
  }
}

/** Subscribers that follow exactly the same channels (and key) share one buffer per turn. */
interface Group {
  /** The key of `Hub.#groups`: the sorted channel names and the routing key. */
  name: string;
  channels: readonly string[];
  key: string | undefined;
  members: Set<Subscriber>;
  batch: Buffer[];
}

interface Channel {
  history: History;
  groups: Set<Group>;
}

export interface HubOptions {
  historySize: number;
  /** Channels remembered at most; past this, the least recently used idle channel is forgotten. */
  maxChannels: number;
  /** Where ids start. Defaults to the time in ms, so ids from an earlier run are recognisably older. */
  firstId?: number;
  /** History an earlier run saved at shutdown (`Hub.save`): ids and replay carry on from it. */
  saved?: SavedHistory;
}

/** A hub's ids and history, as saved at a graceful shutdown for the next run. */
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

export class Hub implements PubSub {
  readonly #historySize: number;
  readonly #maxChannels: number;
  /** Channels in least-recently-published order (a Map iterates in insertion order). */
  readonly #channels = new Map<string, Channel>();
  readonly #groups = new Map<string, Group>();
  readonly #firstId: number;
  #lastId: number;
  /** Every event up to this id has been written to the subscribers of its channel. */
  #deliveredUpTo: number;
  /** The newest id of any channel that was forgotten to stay under `maxChannels`. */
  #forgottenUpTo = 0;
  #pending: HubEvent[] = [];
  #flushScheduled = false;
  readonly #listeners = new ListenerCounts();
  readonly stats: HubStats = { published: 0, delivered: 0, resets: 0 };

  constructor(options: HubOptions) {
    this.#historySize = options.historySize;
    this.#maxChannels = options.maxChannels;
    // Ids start at "now" in ms rather than at 1: after a restart, an id the browser kept from
    // the previous run is below our first id, so we know it is stale and send `reset`,
    // instead of mistaking it for a position in our own, unrelated history.
    this.#firstId = options.saved?.firstId ?? options.firstId ?? Date.now();
    this.#lastId = options.saved?.lastId ?? this.#firstId - 1;
    this.#deliveredUpTo = this.#lastId;
    if (options.saved) this.#restore(options.saved);
  }

  /**
   * The ids and history to hand to the next run. With them, a browser that reconnects to the
   * restarted server resumes where it was instead of getting `reset`.
   */
  save(): SavedHistory {
    this.flush();
    return {
      firstId: this.#firstId,
      lastId: this.#lastId,
      forgottenUpTo: this.#forgottenUpTo,
      channels: [...this.#channels].map(([name, channel]) => ({
        name,
        evictedUpTo: channel.history.evictedUpTo,
        events: channel.history
          .between(0, this.#lastId)
          .map(({ id, event, data, key }) => ({ id, event, data, key })),
      })),
    };
  }

  #restore(saved: SavedHistory): void {
    this.#forgottenUpTo = saved.forgottenUpTo;
    for (const { name, evictedUpTo, events } of saved.channels) {
      const history = this.#channel(name).history;
      history.evictedUpTo = evictedUpTo;
      for (const { id, event, data, key } of events) {
        // Frames are rebuilt rather than stored: the file stays readable, and small.
        history.push({ id, channel: name, event, data, key, frame: Buffer.from(formatEvent({ event, id: String(id), data })) });
      }
    }
  }

  /** One process is the whole system: the store is always there, and every lease is ours. */
  readonly available = true;

  holdLease(): boolean {
    return true;
  }

  async close(): Promise<void> {}

  /** The newest id handed out. */
  get lastId(): number {
    return this.#lastId;
  }

  /** Live subscriptions (a connection following three channels counts once). */
  get subscriberCount(): number {
    let count = 0;
    for (const group of this.#groups.values()) count += group.members.size;
    return count;
  }

  /** Channels currently remembered. */
  get channelCount(): number {
    return this.#channels.size;
  }

  /** Connections following `channel` now. */
  listenersOf(channel: string): number {
    return this.#listeners.of(channel);
  }

  /**
   * Calls `watcher(true)` when `channel` gains its first listener and `watcher(false)` when it
   * loses its last, so demo timers run only while someone is listening. Returns the function
   * that stops watching.
   */
  onDemand(channel: string, watcher: (listening: boolean) => void): () => void {
    return this.#listeners.watch(channel, watcher);
  }

  /**
   * Stores and schedules delivery of one event; resolves with it and its id. The work is done
   * before this returns (an async function runs synchronously up to its first await), so
   * events keep the order of the calls. Rejects with `SseFormatError` (before anything is
   * stored) if the event cannot be framed.
   */
  async publish(input: PublishInput): Promise<HubEvent> {
    const id = this.#lastId + 1;
    // Serialise first: if the frame is refused, nothing has been stored or half-published.
    const frame = Buffer.from(formatEvent({ event: input.event, id: String(id), data: input.data }));
    this.#lastId = id;
    const event: HubEvent = { id, channel: input.channel, event: input.event, data: input.data, key: input.key, frame };
    this.#channel(input.channel).history.push(event);
    this.stats.published += 1;
    this.#pending.push(event);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return event;
  }

  /**
   * Attaches a subscriber: first what it missed since `lastEventId` (or a `reset`), then live
   * events. Replay and attach happen in one synchronous step, so no event can slip between
   * them, and replay stops at what has already been delivered live, so none comes twice.
   * Returns the function that detaches it.
   */
  subscribe(subscriber: Subscriber, options: SubscribeOptions): () => void {
    // A snapshot is read from current state, which already includes events still waiting for
    // delivery; delivering them now makes "current state" and "delivered up to" the same point.
    if (options.snapshot) this.flush();
    const catchUp = this.#catchUp(options);
    if (catchUp.length > 0) subscriber.write(catchUp);
    const group = this.#join(options);
    group.members.add(subscriber);
    this.#listeners.change(group.channels, +1);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this.#leave(group, subscriber);
      this.#listeners.change(group.channels, -1);
    };
  }


  /** The frames a (re)connecting subscriber needs before it goes live. */
  #catchUp({ channels, lastEventId, key, snapshot }: SubscribeOptions): Buffer {
    const upTo = this.#deliveredUpTo;
    if (snapshot && lastEventId === undefined) return this.#snapshotNow(snapshot, upTo);
    if (lastEventId === undefined) {
      // An id-only frame sets the browser's lastEventId without dispatching an event. If this
      // connection drops before its channel publishes anything, the reconnect still says
      // where it was, and nothing published during the gap is lost.
      return Buffer.from(formatEvent({ id: String(upTo) }));
    }
    const reason = this.#gapReason(channels, lastEventId);
    if (reason !== undefined) {
      this.stats.resets += 1;
      if (snapshot) return this.#snapshotNow(snapshot, upTo);
      return Buffer.from(
        formatEvent({ event: 'reset', id: String(upTo), data: JSON.stringify({ reason }) }),
      );
    }
    const missed: HubEvent[] = [];
    for (const name of channels) {
      for (const event of this.#channels.get(name)?.history.between(lastEventId, upTo) ?? []) {
        if (key === undefined || event.key === key) missed.push(event);
      }
    }
    // Each channel's history is in id order; merging several needs one sort.
    if (channels.length > 1) missed.sort((a, b) => a.id - b.id);
    return Buffer.concat(missed.map((event) => event.frame));
  }

  /** Replay and attach are one synchronous step here, so the snapshot must answer at once. */
  #snapshotNow(snapshot: NonNullable<SubscribeOptions['snapshot']>, upTo: number): Buffer {
    const taken = snapshot(upTo);
    if (taken instanceof Promise) throw new Error('Cannot subscribe: the in-process hub needs a synchronous snapshot');
    return Buffer.from(taken.frames);
  }

  /** Why replay after `lastEventId` cannot be complete, or undefined when it can. */
  #gapReason(channels: readonly string[], lastEventId: number): string | undefined {
    if (lastEventId < this.#firstId - 1 || lastEventId > this.#deliveredUpTo) return 'unknown-id';
    for (const name of channels) {
      const channel = this.#channels.get(name);
      const evictedUpTo = channel ? channel.history.evictedUpTo : this.#forgottenUpTo;
      if (evictedUpTo > lastEventId) return 'history-exceeded';
    }
    return undefined;
  }

  #channel(name: string): Channel {
    let channel = this.#channels.get(name);
    if (channel) {
      // Move to the back: the front of the Map is the least recently used channel.
      this.#channels.delete(name);
    } else {
      channel = { history: new History(this.#historySize), groups: new Set() };
      // This may be a forgotten channel coming back: its old events are gone, so a replay
      // from before the newest forgotten id must get reset, not a silent gap.
      channel.history.evictedUpTo = this.#forgottenUpTo;
      if (this.#channels.size >= this.#maxChannels) this.#forgetIdleChannel();
    }
    this.#channels.set(name, channel);
    return channel;
  }

  /** Forgets the least recently used channel nobody follows; later replays on it get `reset`. */
  #forgetIdleChannel(): void {
    for (const [name, channel] of this.#channels) {
      if (channel.groups.size === 0) {
        this.#forgottenUpTo = Math.max(this.#forgottenUpTo, channel.history.newestId);
        this.#channels.delete(name);
        return;
      }
    }
  }

  #join({ channels, key }: SubscribeOptions): Group {
    const name = JSON.stringify([[...channels].sort(), key ?? null]);
    let group = this.#groups.get(name);
    if (!group) {
      group = { name, channels: [...channels], key, members: new Set(), batch: [] };
      this.#groups.set(name, group);
      for (const channel of channels) this.#channel(channel).groups.add(group);
    }
    return group;
  }

  #leave(group: Group, subscriber: Subscriber): void {
    group.members.delete(subscriber);
    if (group.members.size > 0) return;
    for (const name of group.channels) this.#channels.get(name)?.groups.delete(group);
    this.#groups.delete(group.name);
  }

  /** Writes every pending event to its subscribers now, one buffer per group. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    const touched = new Set<Group>();
    for (const event of pending) {
      const groups = this.#channels.get(event.channel)?.groups;
      if (!groups) continue;
      for (const group of groups) {
        if (group.key !== undefined && group.key !== event.key) continue;
        group.batch.push(event.frame);
        touched.add(group);
      }
    }
    this.#deliveredUpTo = pending.at(-1)?.id ?? this.#deliveredUpTo;
    for (const group of touched) {
      const bytes = group.batch.length === 1 ? group.batch[0]! : Buffer.concat(group.batch);
      const eventCount = group.batch.length;
      group.batch = [];
      for (const member of group.members) {
        // A slow member may be cut off inside write(); deleting from a Set mid-loop is safe.
        member.write(bytes);
        this.stats.delivered += eventCount;
      }
    }
  }
}
