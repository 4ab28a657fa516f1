/**
 * What the routes and demos depend on: publish, subscribe with replay, and the listener counts
 * that start and stop demo timers. One class implements it (./hub.ts), over either of two
 * stores: in this process (./memory-store.ts) or in Redis (lib/scale/redis-store.ts).
 */

/** An event as the hub hands it out. */
export interface HubEvent {
  /** Position in the hub's one id space; also the SSE `id:` field. */
  id: number;
  channel: string;
  event: string | undefined;
  data: string;
  /** Optional routing key: a subscriber may ask for only the events with its key. */
  key: string | undefined;
  /** The complete SSE frame, serialised once per process. */
  frame: Buffer;
}

export interface PublishInput {
  channel: string;
  event?: string;
  data: string;
  key?: string;
  /**
   * True when anyone may have written it (the chat), not a publisher: it then draws on the
   * public's share of history, so the public cannot push out publishers' (./public-share.ts).
   */
  public?: boolean;
}

/** Anything frames can be written to; an `SseStream` in practice. */
export interface Subscriber {
  /**
   * `sent`, if given, is called once: when the bytes have been handed to the kernel, or when
   * they never will be (the connection went first). The hub counts a replay's bytes until then.
   */
  write(frames: Buffer, sent?: () => void): boolean;
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
   * complete. `current` is the newest id the hub's store holds at the moment of the call:
   * state that changes only together with a publish in this process can read itself in the
   * same synchronous step and be "as of `current`". State in shared storage reads its own
   * `upTo` atomically with the state instead.
   */
  snapshot?: (current: number) => Promise<Snapshot>;
}

/** Counters for /metrics. */
export interface HubStats {
  published: number;
  delivered: number;
  resets: number;
}

export interface PubSub {
  /**
   * Stores an event and delivers it to every subscriber of its channel; resolves with its id
   * once it is stored. Rejects with `SseFormatError` if it cannot be framed, and (Redis) with
   * a 503 `HttpError` while the store is unreachable.
   */
  publish(input: PublishInput): Promise<{ id: number }>;
  /**
   * Attaches a subscriber: what it missed since `lastEventId` (or a `reset`, or a snapshot),
   * then live events, with no gap and no duplicate. Returns at once (replay may finish later),
   * so the caller can register `unsubscribe` next, before anything else can go wrong. The
   * subscriber may be written to before this returns (a new client's first frame). A
   * subscriber subscribes once (again throws); it follows several channels through
   * `options.channels`.
   */
  subscribe(subscriber: Subscriber, options: SubscribeOptions): void;
  /**
   * Detaches a subscriber, at once: nothing more is written to it. Safe to call again. Takes
   * no `this`, so it can be registered as it is: `stream.onClose(hub.unsubscribe)`.
   */
  readonly unsubscribe: (subscriber: Subscriber) => void;
  /** Connections following `channel` in this process. */
  listenersOf(channel: string): number;
  /** Calls `watcher(true)` on a channel's first listener here, `watcher(false)` on its last. */
  onDemand(channel: string, watcher: (listening: boolean) => void): () => void;
  /**
   * Takes or renews the lease `name` for `ttlMs`; true while this process holds it. With many
   * processes, only the holder runs a demo timer, so the ticker does not tick once per process.
   */
  holdLease(name: string, ttlMs: number): Promise<boolean>;
  /** Delivers every event received so far now, rather than at the end of this turn. */
  flush(): void;
  /** False while the shared store is unreachable (always true in one process). */
  readonly available: boolean;
  /** The newest id this process has handed out or seen. */
  readonly lastId: number;
  readonly subscriberCount: number;
  readonly channelCount: number;
  /** Bytes of replay history held in this process (undefined with Redis, which holds it there). */
  readonly historyBytes: number | undefined;
  /** Bytes of replays written to subscribers whose sockets have not taken them yet. */
  readonly replayBytesWaiting: number;
  readonly stats: HubStats;
  /** Lets go of the store's connections (Redis); nothing to do in one process. */
  close(): Promise<void>;
}
