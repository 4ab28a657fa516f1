/**
 * The hub's storage in Redis, so several processes share channels, ids and history: the same
 * `HubStore` as lib/hub/memory-store.ts, under the same hub (lib/hub/hub.ts).
 *
 * Run several copies of the server behind one port (or one load balancer) and a client may
 * publish on one and listen on another, or reconnect to a different one. Three things have to
 * be shared for that to work, and each lives in Redis:
 *
 * - **Ids.** One counter (`<prefix>id`), incremented by every publish, keeps the one ordered
 *   numeric id space, so one `Last-Event-ID` still says where a connection stopped in every
 *   channel, on whichever process it reconnects to. The counter starts at the time in ms (set
 *   only if missing), so after Redis loses its data, old ids look old, as after a crash of
 *   one process.
 * - **History.** Each channel's events go to a Redis Stream (`<prefix>stream:<channel>`) with
 *   the event id as the entry id (`<id>-0`), kept near `historySize` entries, and all of them
 *   within `maxBytes`, shared out between publishers and the public as in one process
 *   (lib/hub/public-share.ts). Replay is one range read (`XRANGE (<last id>-0 +`) on any
 *   process, and it survives server restarts.
 * - **Live delivery.** Every publish also goes out on Redis pub/sub (`<prefix>live:<channel>`).
 *   Each process holds ONE subscriber connection, subscribed to the channels its clients follow
 *   (not one per client), and hands each event to the hub, which fans it out locally.
 *
 * A Lua script does increment, append and publish in one step (./redis-scripts.ts), so ids
 * reach the streams and the subscribers in id order, and nobody sees an id that is not in its
 * stream yet. Pub/sub alone forgets: a message sent while the subscriber connection is down is
 * gone. So the streams are the truth and pub/sub is only the fast path: when that connection
 * comes back, the store tells the hub to `resync`, and every subscriber catches up from the
 * streams, from its own id.
 */
import { randomBytes } from 'node:crypto';
import { HttpError } from '../http/json.ts';
import { silentLogger, type Logger } from '../http/log.ts';
import type { HubEvent, PublishInput } from '../hub/pubsub.ts';
import { shareOut } from '../hub/public-share.ts';
import type { HistoryView, HubFeed, HubStore } from '../hub/store.ts';
import { checkMessage } from '../sse/format.ts';
import { loadRedis, redactUrl, type LuaScript, type MessageListener, type RedisClient, type RedisModule } from './redis-client.ts';
import { eventBody, LEASE, POSITION, PUBLISH, REPLAY, toHubEvent } from './redis-scripts.ts';

export interface RedisStoreOptions {
  url: string;
  /** Prepended to every key and pub/sub channel, so several apps (or tests) can share a Redis. */
  prefix: string;
  historySize: number;
  maxChannels: number;
  /** Bytes all channels' history may take in Redis (HISTORY_MAX_BYTES), counted as ./redis-scripts.ts says. */
  maxBytes: number;
  /** How long `start` waits for Redis before giving up. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

export class RedisStore implements HubStore {
  readonly #options: RedisStoreOptions;
  readonly #log: Logger;
  readonly #slack: number;
  /** The limits every script gets (ARGV[5]): channels, then bytes, for the publishers and the public. */
  readonly #limits: string;
  /** Names this process as a lease holder. */
  readonly #holder = randomBytes(9).toString('base64url');
  #redis: RedisModule | undefined;
  /** Commands and scripts. Its offline queue is off: while Redis is away, calls fail at once (503) instead of piling up. */
  #command: RedisClient | undefined;
  /** The one pub/sub connection of this process. It queues while away, and resubscribes before it reports ready. */
  #subscriber: RedisClient | undefined;
  /** Channels followed here, each resolving once SUBSCRIBE is confirmed. */
  readonly #following = new Map<string, Promise<void>>();
  #feed: HubFeed | undefined;
  #lastId = 0;
  /** Set when the subscriber connection drops: messages may have been missed since. */
  #feedBroken = false;
  #wasAvailable = false;
  #readyWaiters: Array<() => void> = [];
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#slack = Math.floor(options.historySize / 8);
    const channels = shareOut(options.maxChannels);
    const bytes = shareOut(options.maxBytes);
    this.#limits = [channels.publishers, channels.public, bytes.publishers, bytes.public].join(',');
  }

  attach(feed: HubFeed): void {
    this.#feed = feed;
  }

  /** Loads the client, connects both connections, and resolves once Redis answers. */
  async start(): Promise<void> {
    const redis = (this.#redis = await loadRedis());
    const { url } = this.#options;
    const socket = {
      connectTimeout: 5000,
      // Back off to at most 1 s between attempts, forever: Redis coming back is the normal end of an outage.
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
    };
    const command = redis.createClient({ url, socket, disableOfflineQueue: true, pingInterval: 5000 }) as unknown as RedisClient;
    const subscriber = redis.createClient({ url, socket }) as unknown as RedisClient;
    this.#command = command;
    this.#subscriber = subscriber;
    // An EventEmitter 'error' without a listener would crash the process; here it is an outage.
    command.on('error', (error) => this.#noteOutage('command', error));
    subscriber.on('error', (error) => this.#noteOutage('subscriber', error));
    subscriber.on('end', () => this.#noteOutage('subscriber'));
    subscriber.on('reconnecting', () => this.#noteOutage('subscriber'));
    command.on('ready', () => this.#onReady());
    subscriber.on('ready', () => {
      if (this.#feedBroken) {
        // Resubscribed (node-redis confirms every SUBSCRIBE before 'ready'), but whatever was
        // published meanwhile never reached us: every subscriber catches up from its own id.
        this.#feedBroken = false;
        this.#feed?.resync();
      }
      this.#onReady();
    });
    const timeoutMs = this.#options.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Cannot connect to Redis at ${redactUrl(url)} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all([command.connect(), subscriber.connect()]), timeout]);
    } catch (error) {
      command.destroy();
      subscriber.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** True while both connections are up: publishing works and subscribers are live. */
  get available(): boolean {
    return this.#command?.isReady === true && this.#subscriber?.isReady === true;
  }

  get lastId(): number {
    return this.#lastId;
  }

  /** Channels followed by this process (the streams in Redis are shared by all). */
  get channelCount(): number {
    return this.#following.size;
  }

  /** Not held here: history lives in Redis, shared by every process, and is counted there. */
  readonly historyBytes = undefined;

  /**
   * A lease in Redis: `SET NX PX` takes it, and its holder renews it. Whoever holds it runs the
   * job; if the holder goes quiet, it expires within `ttlMs` and another process takes over.
   */
  async holdLease(name: string, ttlMs: number): Promise<boolean> {
    if (!this.available) return false;
    try {
      return (await this.run(LEASE, [name, this.#holder, String(ttlMs)], 'take a lease')) === 1;
    } catch (error) {
      // No lease, no tick: the job runs again at the next tick that gets one.
      this.#log('redis.lease_failed', { name, error: String((error as Error)?.message ?? error) });
      return false;
    }
  }

  /**
   * Stores the event in its channel's stream and publishes it, in one script; resolves with
   * its id. This process's own subscribers get it back through pub/sub like everyone else's,
   * so there is one delivery path and one order.
   */
  async append(input: PublishInput): Promise<number> {
    // Refuse what cannot be framed (a line break in `event`, a lone surrogate) before it is
    // stored: here the frame is made only when the event comes back from Redis.
    checkMessage({ event: input.event, data: input.data });
    const writer = input.public ? ['public'] : [];
    const id = Number(await this.run(PUBLISH, [input.channel, eventBody(input), ...writer], 'publish'));
    this.#lastId = Math.max(this.#lastId, id);
    return id;
  }

  async position(): Promise<number> {
    return Number(await this.run(POSITION, [], 'subscribe'));
  }

  /** Every event after `after` on `channels`, in one script, so all of it describes one instant. */
  async read(channels: readonly string[], after: number): Promise<HistoryView> {
    const reply = (await this.run(REPLAY, [String(after), ...channels], 'replay')) as unknown[];
    const asOf = Number(reply[0]);
    // The counter's first value is where the id space began: a client that connected before
    // any publish holds exactly it.
    const origin = Number(reply[1]);
    const forgottenUpTo = Number(reply[2]);
    const evictedUpTo: number[] = [];
    const events: HubEvent[] = [];
    for (let index = 0; index < channels.length; index++) {
      // -1: the channel has no stream (never published, or forgotten under MAX_CHANNELS).
      const trimmed = Number(reply[3 + 2 * index]);
      evictedUpTo.push(trimmed === -1 ? forgottenUpTo : trimmed);
      const entries = reply[4 + 2 * index] as Array<[string, string[]]>;
      for (const [entryId, fields] of entries) events.push(toHubEvent(Number.parseInt(entryId, 10), fields[1]!));
    }
    // Each stream is in id order; merging several needs one sort.
    if (channels.length > 1) events.sort((a, b) => a.id - b.id);
    if (asOf > this.#lastId) this.#lastId = asOf;
    return { asOf, origin, evictedUpTo, events };
  }

  /** Subscribes the one subscriber connection to the channel's live feed (once). */
  follow(channel: string): Promise<void> {
    const subscriber = this.#subscriber;
    if (!subscriber) return Promise.resolve();
    let following = this.#following.get(channel);
    if (!following) {
      following = subscriber.subscribe(this.#liveName(channel), this.#onMessage).catch((error: unknown) => {
        // Forget the failed attempt, so the next catch-up subscribes again.
        if (this.#following.get(channel) === following) this.#following.delete(channel);
        throw error;
      });
      this.#following.set(channel, following);
    }
    return following;
  }

  /** Stops receiving the channel (commands on one connection run in order, so a later SUBSCRIBE still wins). */
  unfollow(channel: string): void {
    if (!this.#following.delete(channel)) return;
    this.#subscriber?.unsubscribe(this.#liveName(channel), this.#onMessage).catch((error: unknown) => {
      // Harmless: a channel nobody here follows only costs its messages, which the hub ignores.
      this.#log('redis.unsubscribe_failed', { channel, error: String((error as Error)?.message ?? error) });
    });
  }

  /**
   * Runs a script with the shared arguments in front. Connection trouble becomes a 503 that
   * names the action; an error Redis itself answered (a bug) stays what it is.
   */
  async run(script: LuaScript, args: readonly string[], action: string): Promise<unknown> {
    const { prefix, historySize } = this.#options;
    const common = [prefix, String(Date.now()), String(historySize), String(this.#slack), this.#limits];
    return this.#call(action, (command) => script.run(command, [...common, ...args]));
  }

  /** Sends one plain command (reads), with the same error rules as `run`. */
  async command(args: string[], action: string): Promise<unknown> {
    return this.#call(action, (command) => command.sendCommand(args));
  }

  /** The key prefix, for stores that keep their own keys beside the hub's. */
  get prefix(): string {
    return this.#options.prefix;
  }

  async #call(action: string, send: (command: RedisClient) => Promise<unknown>): Promise<unknown> {
    const command = this.#command;
    if (this.#closed || !command?.isReady) throw unavailable(action);
    try {
      return await send(command);
    } catch (error) {
      if (this.#redis && error instanceof this.#redis.ErrorReply) throw error;
      throw unavailable(action);
    }
  }

  /** A message from the subscriber connection: `<id>\n<body>`. */
  readonly #onMessage: MessageListener = (message) => {
    const newline = message.indexOf('\n');
    let event: HubEvent;
    try {
      event = toHubEvent(Number(message.slice(0, newline)), message.slice(newline + 1));
    } catch (error) {
      this.#log('redis.bad_message', { error: String(error) });
      return;
    }
    if (event.id > this.#lastId) this.#lastId = event.id;
    this.#feed?.receive(event);
  };

  #liveName(channel: string): string {
    return `${this.#options.prefix}live:${channel}`;
  }

  #noteOutage(connection: 'command' | 'subscriber', error?: unknown): void {
    if (connection === 'subscriber') this.#feedBroken = true;
    if (this.#wasAvailable && !this.#closed) {
      this.#wasAvailable = false;
      this.#log('redis.unavailable', { connection, error: error === undefined ? undefined : String((error as Error)?.message ?? error) });
    }
  }

  #onReady(): void {
    if (!this.available) return;
    if (!this.#wasAvailable) {
      this.#wasAvailable = true;
      this.#log('redis.available', { url: redactUrl(this.#options.url) });
    }
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once both connections are up (at once if they are), or when the store closes. */
  whenAvailable(): Promise<void> {
    if (this.available || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /** Closes both connections; catch-ups still waiting give up. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    await Promise.all(
      [this.#command, this.#subscriber].map(async (client) => {
        if (!client) return;
        // close() waits for replies; with Redis away there are none to wait for.
        if (!client.isReady) {
          client.destroy();
          return;
        }
        await client.close().catch((error: unknown) => {
          this.#log('redis.close_failed', { error: String((error as Error)?.message ?? error) });
          client.destroy();
        });
      }),
    );
  }
}

function unavailable(action: string): HttpError {
  return new HttpError(503, `Cannot ${action}: the event store (Redis) is unreachable; try again shortly`, { 'Retry-After': '2' });
}
