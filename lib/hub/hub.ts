/**
 * The hub: publish/subscribe over named channels, with replay for `Last-Event-ID`. This is what
 * Flask-SSE does with Redis; here the rules are written once, and the storage underneath is
 * either this process's memory or Redis (./store.ts).
 *
 * - **One id space.** Every event gets an id from one ordered sequence, so a single
 *   `Last-Event-ID` tells where a connection following several channels left off in all of them.
 * - **Replay, then live, with no gap and no duplicate.** A subscriber is attached at once and
 *   holds live events back while it reads what it missed; then it writes the replay, then the
 *   held events newer than the replay, and goes live. Each subscriber remembers the id it has
 *   been written up to and never writes anything at or below it again.
 * - **No silent gaps.** When history no longer reaches back to the client's id, or the id was
 *   never ours, the first event is `reset` (or a fresh snapshot, for state that can be sent
 *   whole), so the client knows to refetch its state.
 * - **Serialise once, write in slices.** An event is framed once per process. Subscribers with
 *   the same channels form a group, and a group's events go out in passes over its members,
 *   a slice of members per turn of the event loop (`setImmediate`), so a fan-out to 10,000
 *   streams never blocks publishes and new streams for its whole length. Each member gets one
 *   write per pass with every event it has not had, and members at the same point share one
 *   buffer. So events that arrive during a pass reach the members it has not got to yet in the
 *   same write: the busier the server, the more events each socket write carries.
 *   (bench W5, one publisher in lockstep: server CPU per delivery at 10,000 subscribers went
 *   from 11 µs, one write per event, to 0.6 µs; Go's net/http hub spends 7-12 µs. The slice
 *   size is `WRITES_PER_SLICE` below, with its own figures.)
 */
import { formatEvent } from '../sse/format.ts';
import type { Logger } from '../http/log.ts';
import { ListenerCounts } from './listener-counts.ts';
import type { HubEvent, HubStats, PublishInput, PubSub, Snapshot, SubscribeOptions, Subscriber } from './pubsub.ts';
import type { HistoryView, HubStore } from './store.ts';

/** Subscribers following the same channels and key: one shared buffer per turn. */
interface Group {
  /** The key of `Hub.#groups`: the sorted channel names and the routing key. */
  name: string;
  channels: readonly string[];
  key: string | undefined;
  members: Set<Member>;
  /** Events not yet written to every member, in id order (see `#deliver`). */
  recent: HubEvent[];
  /** The pass through `members` under way, if any: where it has got to. */
  pass: Iterator<Member> | undefined;
  /** How many of `recent` the pass under way brings every member (-1 until its first visit). */
  passCovers: number;
  /** `recent` from an index on, framed as one buffer: members at the same point share it. */
  shared: Map<number, Buffer>;
}

/** One subscription, with the id it has been written up to. */
interface Member {
  subscriber: Subscriber;
  /** The id it resumes from and its snapshot, from the subscribe options (its channels and key are its group's). */
  lastEventId: number | undefined;
  snapshot: SubscribeOptions['snapshot'];
  group: Group;
  /** Every event at or below this id has been written (or predates the subscription); undefined until it first goes live. */
  upTo: number | undefined;
  /** True while catching up: live events wait in `held`. */
  replaying: boolean;
  held: HubEvent[] | undefined;
  heldBytes: number;
  /** Bumped by every catch-up; one that finds it changed was overtaken and drops its result. */
  generation: number;
  closed: boolean;
  /** For a new client whose store has no `followNow`: the newest id when it connected, asked for at once. */
  position: Promise<number | undefined> | undefined;
  /** Bytes of its replays written but not yet sent (see `#writeCounted`). */
  bytesWaiting: number;
}

/** What a catch-up writes before going live, and the id it brings the subscriber up to. */
interface CatchUp {
  frames: Buffer;
  upTo: number;
  /** Events copied out of history for this subscriber alone (not a `reset` or a snapshot). */
  replay?: boolean;
}

/**
 * Members written per slice of a fan-out before the event loop gets a turn. A turn costs about
 * what one loopback write does (a few µs), so 16 writes per turn keep the yield near 5 % in the
 * worst case (no event arrives mid-pass), and let a publish in every ~100 µs: an event that
 * arrives then rides along in the writes of the rest of the pass. Measured (bench W5, one
 * publisher in lockstep, --quick, same session, server CPU per delivery at 100 / 1k / 10k
 * subscribers): 256 per slice 6.8 / 3-4 / 1.0 µs; 64: 5.4 / 1.35 / 0.63; 32: 4.4-4.7 / 1.05-1.15
 * / 0.57-0.6; 16: 3.6 / 0.75 / 0.63. W3 (10 events/s, nothing to coalesce) did not move.
 */
const WRITES_PER_SLICE = 16;

/** Live events held for one subscriber during its catch-up, at most; past it, the catch-up starts over. */
const MAX_HELD_BYTES = 8 * 1024 * 1024;

export interface HubOptions {
  logger: Logger;
  /**
   * The most bytes one replay may write (the streams' backlog bound). A replay is one write
   * to a client that may not read at all: without a bound, a few old `Last-Event-ID`s on
   * never-reading sockets would make the server hold whole histories in memory. Past it, the
   * client gets `reset` (or a snapshot) instead, which is what it would get anyway once it
   * fell that far behind live.
   */
  maxReplayBytes: number;
  /**
   * The most bytes all replays together may hold while they wait for their sockets. Live
   * events are one buffer shared by every subscriber, but a replay is a copy for one client
   * alone, and a client that never reads keeps it until it is cut as stalled: without this,
   * clients resuming from old ids on sockets they never read made the server hold one
   * `maxReplayBytes` copy each (100 such streams from one address: +107 MiB, found by an
   * attacker's review). Past it, a replay is `reset` with the reason `busy`; a replay always
   * goes when no other is waiting, so the bound is this plus one replay.
   */
  maxReplayBytesWaiting: number;
}

export class Hub implements PubSub {
  readonly #store: HubStore;
  readonly #log: Logger;
  readonly #maxReplayBytes: number;
  readonly #maxReplayBytesWaiting: number;
  /** Bytes of every member's replays written and not yet sent. */
  #replayBytesWaiting = 0;
  /** The channels followed in this process, and the groups following each. */
  readonly #channels = new Map<string, Set<Group>>();
  readonly #groups = new Map<string, Group>();
  /** Each subscriber's subscription, found by the subscriber when it leaves. */
  readonly #members = new Map<Subscriber, Member>();
  readonly #listeners = new ListenerCounts();
  #pending: HubEvent[] = [];
  #deliveryScheduled = false;
  /** Groups with a pass under way. */
  readonly #active = new Set<Group>();
  #closed = false;
  /** The last start frame built (`#startFrame`), with its id. */
  #start: { id: number; frame: Buffer } | undefined;
  readonly stats: HubStats = { published: 0, delivered: 0, resets: 0 };

  constructor(store: HubStore, options: HubOptions) {
    this.#store = store;
    this.#log = options.logger;
    this.#maxReplayBytes = options.maxReplayBytes;
    this.#maxReplayBytesWaiting = options.maxReplayBytesWaiting;
    store.attach({
      receive: (event) => this.#receive(event),
      resync: () => {
        for (const member of this.#members.values()) void this.#catchUpAndGoLive(member);
      },
    });
  }

  get available(): boolean {
    return this.#store.available;
  }

  get lastId(): number {
    return this.#store.lastId;
  }

  /** Live subscriptions (a connection following three channels counts once). */
  get subscriberCount(): number {
    return this.#members.size;
  }

  get channelCount(): number {
    return this.#store.channelCount;
  }

  get historyBytes(): number | undefined {
    return this.#store.historyBytes;
  }

  get replayBytesWaiting(): number {
    return this.#replayBytesWaiting;
  }

  listenersOf(channel: string): number {
    return this.#listeners.of(channel);
  }

  /**
   * Calls `watcher(true)` when `channel` gains its first listener here and `watcher(false)`
   * when it loses its last, so demo timers run only while someone is listening.
   */
  onDemand(channel: string, watcher: (listening: boolean) => void): () => void {
    return this.#listeners.watch(channel, watcher);
  }

  holdLease(name: string, ttlMs: number): Promise<boolean> {
    return this.#store.holdLease(name, ttlMs);
  }

  /**
   * Stores one event and resolves with its id. Events keep the order of the calls: each store
   * takes the id in the call itself (memory) or in one ordered connection (Redis).
   */
  async publish(input: PublishInput): Promise<{ id: number }> {
    const id = await this.#store.append(input);
    this.stats.published += 1;
    return { id };
  }

  /**
   * Attaches a subscriber; the catch-up runs behind it. Live events arriving before the
   * catch-up is written are held for it, not lost. A new client of the in-process store has no
   * catch-up: its first write happens in this call. Subscribing a subscriber again throws:
   * it would leak the first subscription.
   */
  subscribe(subscriber: Subscriber, options: SubscribeOptions): void {
    if (this.#members.has(subscriber)) throw new Error('This subscriber is subscribed already');
    const group = this.#join(options);
    const isNew = options.lastEventId === undefined && !options.snapshot;
    // A new client has nothing to catch up on: it starts at the newest id. A store in this
    // process (`followNow`) follows its channels and says that id in this very call, so no
    // event can be published in between; one published later has a higher id and reaches it
    // live. Then the catch-up, and its six promises, can be skipped: that took about 5 % off
    // the CPU of opening a stream (90 → 85 µs; 10,000 raw-socket connects to a fresh server,
    // mean of 28 runs each; within the noise of the bench's W1).
    const startsAt = isNew ? this.#store.followNow?.(group.channels) : undefined;
    const member: Member = {
      subscriber,
      lastEventId: options.lastEventId,
      snapshot: options.snapshot,
      group,
      upTo: undefined,
      replaying: true,
      held: undefined,
      heldBytes: 0,
      generation: 0,
      closed: false,
      bytesWaiting: 0,
      // Asked now, not after the catch-up's round trips: a client that publishes as soon as
      // its stream opens must find its event after this position.
      position:
        isNew && startsAt === undefined
          ? this.#store.position().catch((error: unknown) => {
              this.#log('hub.position_failed', { error: String((error as Error)?.message ?? error) });
              return undefined;
            })
          : undefined,
    };
    group.members.add(member);
    this.#members.set(subscriber, member);
    this.#listeners.change(group.channels, +1);
    if (startsAt !== undefined) this.#goLive(member, { frames: this.#startFrame(startsAt), upTo: startsAt });
    else void this.#catchUpAndGoLive(member);
  }

  /**
   * Detaches a subscriber; safe to call again, or for one never subscribed. An arrow function,
   * so it can be handed over as it is: `stream.onClose(hub.unsubscribe)`.
   */
  readonly unsubscribe = (subscriber: Subscriber): void => {
    const member = this.#members.get(subscriber);
    if (member === undefined) return;
    member.closed = true;
    // Its socket is gone, and with it whatever of its replays was still waiting.
    this.#replayBytesWaiting -= member.bytesWaiting;
    member.bytesWaiting = 0;
    this.#members.delete(subscriber);
    this.#listeners.change(member.group.channels, -1);
    this.#leave(member.group, member);
  };

  /**
   * Brings one subscriber up to date, then lets it go live. Runs when it subscribes, and again
   * for everyone after the store says live events may have been missed; a newer run overtakes
   * an older one. While the store is unreachable it waits, and tries again when it is back.
   */
  async #catchUpAndGoLive(member: Member): Promise<void> {
    const generation = ++member.generation;
    member.replaying = true;
    // Whatever was held is older than what the new catch-up will read: it reads from the same id.
    member.held = undefined;
    member.heldBytes = 0;
    const stale = () => member.closed || member.generation !== generation || this.#closed;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(100 * attempt, 1000)).unref());
      // Not awaited when there is nothing to wait for: the stream reaches its first write sooner.
      if (!this.#store.available) await this.#store.whenAvailable();
      if (stale()) return;
      try {
        // Live delivery must be on before history is read: then every event is either in
        // what is read, or arrives live (held), or both (dropped by id).
        const { channels } = member.group;
        // One channel is the common case, and with Redis every new stream passes here:
        // awaiting its promise directly spares an array and Promise.all's own promise.
        await (channels.length === 1 ? this.#store.follow(channels[0]!) : Promise.all(channels.map((name) => this.#store.follow(name))));
        if (stale()) return;
        const catchUp = await this.#catchUp(member);
        if (stale()) return;
        this.#goLive(member, catchUp);
        return;
      } catch (error) {
        if (stale()) return;
        this.#log('hub.replay_failed', { error: String((error as Error)?.message ?? error), attempt });
      }
    }
  }

  /** What a subscriber needs before it goes live: a replay, a `reset`, or a snapshot. */
  async #catchUp(member: Member): Promise<CatchUp> {
    const { snapshot, lastEventId } = member;
    const { channels } = member.group;
    const from = member.upTo ?? lastEventId;
    if (from === undefined) {
      if (snapshot) return this.#snapshot(snapshot);
      // A new client starts where the hub stood when it connected (`idOnly` says why it is told).
      const position = (await member.position) ?? (await this.#store.position());
      member.position = undefined;
      const view = await this.#store.read(channels, position);
      const missed = this.#missed(member, view);
      if (missed !== undefined) return { frames: Buffer.concat([idOnly(position), ...missed]), upTo: view.asOf, replay: true };
      return this.#reset(view, 'too-much-to-replay', snapshot);
    }
    const view = await this.#store.read(channels, from);
    const reason = gapReason(view, from);
    if (reason !== undefined) return this.#reset(view, reason, snapshot);
    const missed = this.#missed(member, view);
    if (missed === undefined) return this.#reset(view, 'too-much-to-replay', snapshot);
    return { frames: Buffer.concat(missed), upTo: view.asOf, replay: true };
  }

  /** The frames of the events a member follows (its key, if it has one), or undefined past the replay bound. */
  #missed(member: Member, view: HistoryView): Buffer[] | undefined {
    const { key } = member.group;
    const frames: Buffer[] = [];
    let bytes = 0;
    for (const event of view.events) {
      if (key !== undefined && event.key !== key) continue;
      bytes += event.frame.length;
      if (bytes > this.#maxReplayBytes) return undefined;
      frames.push(event.frame);
    }
    return frames;
  }

  /** Instead of a replay that cannot be complete (or would be too large): a snapshot, or `reset`. */
  async #reset(view: HistoryView, reason: string, snapshot: SubscribeOptions['snapshot']): Promise<CatchUp> {
    this.stats.resets += 1;
    if (snapshot) return this.#snapshot(snapshot);
    return { frames: resetFrame(view.asOf, reason), upTo: view.asOf };
  }

  async #snapshot(snapshot: NonNullable<SubscribeOptions['snapshot']>): Promise<CatchUp> {
    const taken: Snapshot = await snapshot(this.#store.lastId);
    return { frames: Buffer.from(taken.frames), upTo: taken.upTo };
  }

  /** The `id:` frame a new client starts with, shared by all arriving between two events (../sse/preframed-write.ts says why). */
  #startFrame(id: number): Buffer {
    if (this.#start?.id !== id) this.#start = { id, frame: idOnly(id) };
    return this.#start.frame;
  }

  /** Writes the catch-up, then the held live events it does not already cover, and goes live. */
  #goLive(member: Member, { frames, upTo, replay }: CatchUp): void {
    const newer = (member.held ?? []).filter((event) => event.id > upTo);
    const held = newer.length > 0 ? Buffer.concat(newer.map((event) => event.frame)) : undefined;
    if (replay === true && this.#replayBytesWaiting > 0 && this.#replayBytesWaiting + frames.length > this.#maxReplayBytesWaiting) {
      // Too many replays waiting for their sockets already: this client starts over instead.
      this.stats.resets += 1;
      member.subscriber.write(resetFrame(upTo, 'busy'));
    } else if (frames.length > 0) {
      if (replay === true) this.#writeCounted(member, frames);
      else member.subscriber.write(frames);
    }
    // Assigned, not raised: after a store lost its data, a reset may move the position back.
    member.upTo = upTo;
    member.held = undefined;
    member.heldBytes = 0;
    member.replaying = false;
    if (held !== undefined) {
      // Copied for this member alone too, so counted like its replay.
      this.#writeCounted(member, held);
      member.upTo = newer.at(-1)!.id;
      this.stats.delivered += newer.length;
    }
  }

  /** Writes bytes made for one member alone, counting them as waiting until its socket takes them. */
  #writeCounted(member: Member, frames: Buffer): void {
    let bytes = frames.length;
    member.bytesWaiting += bytes;
    this.#replayBytesWaiting += bytes;
    member.subscriber.write(frames, () => {
      // Once: `unsubscribe` has already let go of whatever a closed member had waiting.
      if (bytes === 0 || member.closed) return;
      member.bytesWaiting -= bytes;
      this.#replayBytesWaiting -= bytes;
      bytes = 0;
    });
  }

  /** A stored event, from the store: delivered with the others of this turn. */
  #receive(event: HubEvent): void {
    this.#pending.push(event);
    if (!this.#deliveryScheduled) {
      this.#deliveryScheduled = true;
      setImmediate(this.#deliverSlice);
    }
  }

  /** One slice of the deliveries under way; the next slice runs after the event loop's I/O. */
  readonly #deliverSlice = (): void => {
    this.#deliveryScheduled = false;
    if (this.#deliver(WRITES_PER_SLICE)) {
      this.#deliveryScheduled = true;
      setImmediate(this.#deliverSlice);
    }
  };

  /** Writes every event received so far to every subscriber now, without yielding. */
  flush(): void {
    this.#deliver(Number.POSITIVE_INFINITY);
  }

  /**
   * Hands the events received so far to their groups, then carries each group's pass through
   * its members on, for at most `budget` members. Returns true while work is left.
   *
   * A pass visits every member of a group once and writes it, as one buffer, every event it
   * has not had yet. Events that arrive while a pass is under way join it: the members it has
   * not reached yet get them in the same write, and the ones it has already written get them
   * in the next pass. Stores hand events over in id order, so `recent` is in id order too.
   */
  #deliver(budget: number): boolean {
    if (this.#pending.length > 0) {
      const pending = this.#pending;
      this.#pending = [];
      for (const event of pending) {
        for (const group of this.#channels.get(event.channel) ?? []) {
          if (group.key !== undefined && group.key !== event.key) continue;
          group.recent.push(event);
          group.shared.clear();
          if (group.pass === undefined) {
            group.pass = group.members.values();
            group.passCovers = -1;
            this.#active.add(group);
          }
        }
      }
    }
    for (const group of this.#active) {
      for (;;) {
        if (budget <= 0) return true;
        const next = group.pass!.next();
        if (next.done) {
          // If another pass is due, it queues behind the other groups: a group whose events
          // keep coming must not keep the rest waiting.
          if (!this.#endPass(group)) {
            this.#active.delete(group);
            this.#active.add(group);
          }
          break;
        }
        budget -= 1;
        this.#visit(group, next.value);
      }
    }
    return false;
  }

  /**
   * Ends a pass: every member now has every event that was there when the pass began, so
   * those are dropped; if more came during the pass, the next pass begins. True when the
   * group has nothing left to deliver.
   */
  #endPass(group: Group): boolean {
    const covered = group.passCovers === -1 ? group.recent.length : group.passCovers;
    group.recent = group.recent.slice(covered);
    group.shared.clear();
    if (group.recent.length === 0 || group.members.size === 0) {
      group.recent = [];
      group.pass = undefined;
      this.#active.delete(group);
      return true;
    }
    group.pass = group.members.values();
    group.passCovers = -1;
    return false;
  }

  /**
   * Writes one member every event of its group it has not had. A member that is catching up
   * holds them instead; one whose id is already past some of them (its replay read them too)
   * gets only the newer ones.
   */
  #visit(group: Group, member: Member): void {
    const recent = group.recent;
    // The first member of a pass fixes what the pass covers: every later one gets at least that.
    if (group.passCovers === -1) group.passCovers = recent.length;
    // A replaying member holds events in id order: it already has all up to the last one held.
    const after = member.replaying ? (member.held?.at(-1)?.id ?? 0) : (member.upTo ?? 0);
    if (recent.at(-1)!.id <= after) return;
    // The first event newer than `after`: members at the same point share one buffer.
    let low = 0;
    let high = recent.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (recent[middle]!.id <= after) low = middle + 1;
      else high = middle;
    }
    if (member.replaying) {
      this.#hold(member, recent.slice(low));
      return;
    }
    let bytes = group.shared.get(low);
    if (bytes === undefined) {
      bytes = low === recent.length - 1 ? recent[low]!.frame : Buffer.concat(recent.slice(low).map((event) => event.frame));
      group.shared.set(low, bytes);
    }
    member.upTo = recent.at(-1)!.id;
    this.stats.delivered += recent.length - low;
    // A slow member may be cut off inside write(); the pass's iterator skips what was deleted.
    member.subscriber.write(bytes);
  }

  /** Holds live events for a member that is catching up; past the bound, it starts over instead. */
  #hold(member: Member, events: HubEvent[]): void {
    (member.held ??= []).push(...events);
    for (const event of events) member.heldBytes += event.frame.length;
    // Starting over drops what was held: the new catch-up reads it from the store.
    if (member.heldBytes > MAX_HELD_BYTES) void this.#catchUpAndGoLive(member);
  }

  #join({ channels, key }: SubscribeOptions): Group {
    const name = JSON.stringify([[...channels].sort(), key ?? null]);
    let group = this.#groups.get(name);
    if (!group) {
      group = { name, channels: [...channels], key, members: new Set(), recent: [], pass: undefined, passCovers: -1, shared: new Map() };
      this.#groups.set(name, group);
      for (const channel of channels) {
        let groups = this.#channels.get(channel);
        if (!groups) this.#channels.set(channel, (groups = new Set()));
        groups.add(group);
      }
    }
    return group;
  }

  #leave(group: Group, member: Member): void {
    group.members.delete(member);
    if (group.members.size > 0) return;
    this.#groups.delete(group.name);
    this.#active.delete(group);
    for (const channel of group.channels) {
      const groups = this.#channels.get(channel);
      if (!groups) continue;
      groups.delete(group);
      if (groups.size > 0) continue;
      this.#channels.delete(channel);
      this.#store.unfollow(channel);
    }
  }

  /** Closes the store; catch-ups still waiting give up. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#store.close();
  }
}

/**
 * A new client's first frame. The lone `id:` sets the browser's lastEventId without
 * dispatching an event: if this connection drops before its channels publish anything, the
 * reconnect still says where it was.
 */
function idOnly(position: number): Buffer {
  return Buffer.from(formatEvent({ id: String(position) }));
}

/** A `reset` event: start over from `id`, and why. */
function resetFrame(id: number, reason: string): Buffer {
  return Buffer.from(formatEvent({ event: 'reset', id: String(id), data: JSON.stringify({ reason }) }));
}

/** Why replay after `from` cannot be complete, or undefined when it can. */
function gapReason(view: HistoryView, from: number): string | undefined {
  // Below the origin: from before a restart that lost history. Above asOf: never handed out.
  if (from < view.origin || from > view.asOf) return 'unknown-id';
  if (view.evictedUpTo.some((evicted) => evicted > from)) return 'history-exceeded';
  return undefined;
}
