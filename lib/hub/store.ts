/**
 * What the hub needs from storage, the one part that differs between one process and many:
 * where ids come from, where history is kept, and how a stored event gets back to this
 * process's subscribers. `MemoryStore` (./memory-store.ts) keeps it all in this process;
 * `RedisStore` (lib/scale/redis-store.ts) keeps it in Redis, shared by every process. The rules
 * built on top (fan-out, replay, reset, snapshots) are written once, in ./hub.ts.
 */
import type { HubEvent, PublishInput } from './pubsub.ts';

/** How a store hands events back to the hub. */
export interface HubFeed {
  /** A stored event, in id order, for live delivery to this process's subscribers. */
  receive(event: HubEvent): void;
  /** Live events may have been missed (a connection dropped and came back): everyone catches up. */
  resync(): void;
}

/** What a store holds after one id on some channels, read as of one instant. */
export interface HistoryView {
  /** The newest id at the moment of reading. */
  asOf: number;
  /** Where the id space began: the position of a client that connected before any publish. */
  origin: number;
  /** Per channel, in the order asked: the newest id no longer in its history (0 when none is gone). */
  evictedUpTo: number[];
  /** The events after the id asked for, oldest first, across all the channels. */
  events: HubEvent[];
}

export interface HubStore {
  /** Called once by the hub: where live events and resync requests go. */
  attach(feed: HubFeed): void;
  /**
   * Stores an event under the next id and resolves with that id; the event reaches the feed too.
   * An event that cannot be framed (lib/sse/format.ts, `checkMessage`) is refused with
   * `SseFormatError` before anything is stored.
   */
  append(input: PublishInput): Promise<number>;
  /** Everything after `after` on `channels`, with what replay needs to spot a gap. */
  read(channels: readonly string[], after: number): Promise<HistoryView>;
  /** The newest id now: where a new client starts. */
  position(): Promise<number>;
  /** From now on, live events of `channel` reach the feed; resolves once they will. Idempotent. */
  follow(channel: string): Promise<void>;
  /**
   * `follow` for every one of `channels`, then `position`, both done in this very call, so
   * that no event can be stored in between: a new client starts right after the id returned,
   * with nothing to catch up on. Only the in-process store has it. With Redis, following is a
   * round trip, during which events may be published, so there a new client catches up.
   */
  followNow?(channels: readonly string[]): number;
  /** Nobody here follows `channel` any more. */
  unfollow(channel: string): void;
  holdLease(name: string, ttlMs: number): Promise<boolean>;
  /** Resolves once the store is reachable (at once when it is), or when it closes. */
  whenAvailable(): Promise<void>;
  readonly available: boolean;
  /** The newest id this process has stored or seen. */
  readonly lastId: number;
  /** Channels the store keeps now. */
  readonly channelCount: number;
  /** Bytes of history this process holds (undefined when history lives elsewhere: Redis). */
  readonly historyBytes: number | undefined;
  close(): Promise<void>;
}
