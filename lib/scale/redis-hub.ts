/**
 * The hub across processes: the same `PubSub` as lib/hub.ts, with Redis as the shared part.
 *
 * Run several copies of the server behind one port (or one load balancer) and a client may
 * publish on one and listen on another, or reconnect to a different one. Three things have to
 * be shared for that to work, and each lives in Redis:
 *
 * - **Ids.** One counter (`<prefix>id`), incremented by every publish, keeps the one ordered
 *   numeric id space, so one `Last-Event-ID` still says where a connection stopped in every
 *   channel, on whichever process it reconnects to. The counter starts at the time in ms (set
 *   only if missing), so after Redis loses its data, old ids look old, as after a restart of
 *   the in-process hub.
 * - **History.** Each channel's events go to a Redis Stream (`<prefix>stream:<channel>`) with
 *   the event id as the entry id (`<id>-0`), kept near `historySize` entries. Replay is one
 *   range read (`XRANGE (<last id>-0 +`) on any process, and it survives server restarts.
 * - **Live delivery.** Every publish also goes out on Redis pub/sub (`<prefix>live:<channel>`).
 *   Each process holds ONE subscriber connection, subscribed to the channels its clients follow
 *   (not one per client), and fans each event out locally: serialised once per process, batched
 *   per turn of the event loop, one write per subscriber, exactly as the in-process hub does.
 *
 * A Lua script does increment, append and publish in one step. Redis runs a script atomically,
 * so ids reach the streams and the subscribers in id order, and nobody sees an id that is not
 * in its stream yet.
 *
 * Pub/sub alone forgets: a message sent while a subscriber is disconnected is gone. So the
 * streams are the truth and pub/sub is only the fast path. Every subscriber remembers the id it
 * has been written up to. Replay (when it connects, and again for every subscriber after the
 * subscriber connection comes back from a Redis hiccup) reads the streams from there, while
 * live events for it are held back; then the replay is written, then the held events newer
 * than the replay, and it goes live. Anything at or below the id it has is never written
 * again: no gap, no duplicate.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ListenerCounts } from '../hub/listener-counts.ts';
import type { HubEvent, HubStats, PublishInput, PubSub, SubscribeOptions, Subscriber } from '../hub/memory-hub.ts';
import { HttpError } from '../http/json.ts';
import { silentLogger, type Logger } from '../http/log.ts';
import { formatEvent } from '../sse/format.ts';

type MessageListener = (message: string, channel: string) => void;

/**
 * The few node-redis calls this file makes. Naming them here keeps the rest of the file free
 * of the client's many generic parameters, and documents exactly what we rely on.
 */
interface RedisClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  on(event: 'error' | 'ready' | 'end' | 'reconnecting', listener: (error?: unknown) => void): unknown;
  close(): Promise<void>;
  destroy(): void;
}

type RedisModule = typeof import('redis');

/**
 * Loads the `redis` client only when REDIS_URL asks for it: the server has no runtime
 * dependencies, and a server without Redis never needs the package.
 */
async function loadRedis(): Promise<RedisModule> {
  try {
    return await import('redis');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes("'redis'")) {
      throw new Error('REDIS_URL is set, but the redis client is not installed: run `npm install redis`');
    }
    throw error;
  }
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * A Lua script, run by its SHA1 (`EVALSHA`) so the source crosses the wire once; Redis
 * answers NOSCRIPT after a restart emptied its script cache, and then the source is sent.
 * Keys are built inside the scripts from the prefix, so this targets one Redis server (or a
 * primary with replicas), not Redis Cluster, which needs every key named up front.
 */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: RedisClient, args: readonly string[]): Promise<unknown> {
    try {
      return await client.sendCommand(['EVALSHA', this.#sha, '0', ...args]);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      return client.sendCommand(['EVAL', this.#source, '0', ...args]);
    }
  }
}

/**
 * Lua shared by every script that publishes. ARGV[1..5] are always: key prefix, now (ms),
 * history size, trim slack, most channels kept; a script's own arguments follow from ARGV[6].
 *
 * Trimming: `XADD ... MAXLEN ~ N` would cap a stream cheaply, but it does not say what it
 * removed, and replay has to know how far back history still reaches, or it cannot tell
 * "nothing happened" from "it was trimmed away". So the script trims itself, and remembers the
 * newest id it removed (`<prefix>trimmed`, per channel): it lets a stream grow `slack` entries
 * past N, then cuts back to exactly N in one go, which keeps the cost per publish constant.
 *
 * Channels are remembered in `<prefix>channels` by their newest id; past the limit the least
 * recently published one is forgotten (its stream deleted) and `<prefix>forgotten` keeps the
 * newest id it had, so a replay on it gets `reset`, as in the in-process hub.
 */
export const LUA_LIBRARY = `
local prefix, now = ARGV[1], ARGV[2]
local keep, slack, max_channels = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function ensure_counter()
  if redis.call('SET', prefix .. 'id', now, 'NX') then redis.call('SET', prefix .. 'first-id', now) end
end

local function publish(channel, body)
  ensure_counter()
  local id = string.format('%d', redis.call('INCR', prefix .. 'id'))
  local stream = prefix .. 'stream:' .. channel
  if redis.call('EXISTS', stream) == 0 then
    -- A new stream may be a forgotten channel coming back: its old history is gone, so
    -- replays from before the newest forgotten id must get reset, not a silent gap.
    local forgotten = redis.call('GET', prefix .. 'forgotten')
    if forgotten then redis.call('HSET', prefix .. 'trimmed', channel, forgotten) end
  end
  redis.call('XADD', stream, id .. '-0', 'm', body)
  local length = redis.call('XLEN', stream)
  if length > keep + slack then
    local cut = redis.call('XRANGE', stream, '-', '+', 'COUNT', length - keep)
    local newest = tonumber(string.match(cut[#cut][1], '^%d+'))
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', newest + 1))
    redis.call('HSET', prefix .. 'trimmed', channel, string.format('%d', newest))
  end
  redis.call('ZADD', prefix .. 'channels', id, channel)
  if redis.call('ZCARD', prefix .. 'channels') > max_channels then
    local oldest = redis.call('ZPOPMIN', prefix .. 'channels')
    redis.call('DEL', prefix .. 'stream:' .. oldest[1])
    redis.call('HDEL', prefix .. 'trimmed', oldest[1])
    if tonumber(oldest[2]) > tonumber(redis.call('GET', prefix .. 'forgotten') or '0') then
      redis.call('SET', prefix .. 'forgotten', oldest[2])
    end
  end
  redis.call('PUBLISH', prefix .. 'live:' .. channel, id .. '\\n' .. body)
  return tonumber(id)
end
`;

/** ARGV[6] channel, ARGV[7] the event body. Returns the new id. */
const PUBLISH = new LuaScript(`${LUA_LIBRARY}
return publish(ARGV[6], ARGV[7])`);

/** The newest id, where a new client starts. */
const POSITION = new LuaScript(`${LUA_LIBRARY}
ensure_counter()
return tonumber(redis.call('GET', prefix .. 'id'))`);

/**
 * Replay after ARGV[6] on channels ARGV[7..]: the newest id, the first id since the counter
 * began, the newest forgotten id, then per channel how far it was trimmed (-1: no stream) and
 * its entries after that id. One script, so all of it describes the same instant.
 */
const REPLAY = new LuaScript(`${LUA_LIBRARY}
ensure_counter()
local after = ARGV[6]
local result = {
  tonumber(redis.call('GET', prefix .. 'id')),
  tonumber(redis.call('GET', prefix .. 'first-id')),
  tonumber(redis.call('GET', prefix .. 'forgotten') or '0'),
}
for i = 7, #ARGV do
  local stream = prefix .. 'stream:' .. ARGV[i]
  local trimmed = -1
  if redis.call('EXISTS', stream) == 1 then
    trimmed = tonumber(redis.call('HGET', prefix .. 'trimmed', ARGV[i]) or '0')
  end
  result[#result + 1] = trimmed
  result[#result + 1] = redis.call('XRANGE', stream, '(' .. after .. '-0', '+')
end
return result`);

/** Takes the lease ARGV[6] for holder ARGV[7] for ARGV[8] ms, or renews it if already ours. */
const LEASE = new LuaScript(`${LUA_LIBRARY}
local key = prefix .. 'lease:' .. ARGV[6]
if redis.call('SET', key, ARGV[7], 'NX', 'PX', ARGV[8]) then return 1 end
if redis.call('GET', key) == ARGV[7] then
  redis.call('PEXPIRE', key, ARGV[8])
  return 1
end
return 0`);

/** An event as it travels through Redis: in the stream entry's `m` field and after the id in a pub/sub message. */
interface EventBody {
  c: string;
  e?: string;
  d: string;
  k?: string;
}

/** The stored form of an event (JSON; absent fields stay absent, so `event: ""` survives). */
export function eventBody(input: PublishInput): string {
  const body: EventBody = { c: input.channel, d: input.data };
  if (input.event !== undefined) body.e = input.event;
  if (input.key !== undefined) body.k = input.key;
  return JSON.stringify(body);
}

/** Serialises a stored event once, for every subscriber in this process. */
function toHubEvent(id: number, text: string): HubEvent {
  const body = JSON.parse(text) as EventBody;
  const frame = Buffer.from(formatEvent({ event: body.e, id: String(id), data: body.d }));
  return { id, channel: body.c, event: body.e, data: body.d, key: body.k, frame };
}

/** Subscribers following the same channels and key: one shared buffer per turn. */
interface Group {
  name: string;
  channels: readonly string[];
  key: string | undefined;
  members: Set<Member>;
  batch: HubEvent[];
}

interface LocalChannel {
  groups: Set<Group>;
  /** Resolves once the subscriber connection has confirmed SUBSCRIBE for this channel. */
  subscribed: Promise<void> | undefined;
}

/** One subscription, with the id it has been written up to. */
interface Member {
  subscriber: Subscriber;
  options: SubscribeOptions;
  group: Group;
  /** Every event at or below this id has been written (or predates the subscription); undefined before the first replay. */
  upTo: number | undefined;
  /** True while a replay is being read: live events wait in `held`. */
  replaying: boolean;
  held: HubEvent[];
  heldBytes: number;
  /** Bumped by every replay; a replay that finds it changed was overtaken and drops its result. */
  generation: number;
  closed: boolean;
  /** For a new client: the newest id when it connected, asked for at once. */
  position: Promise<number | undefined> | undefined;
}

/** What a replay writes before going live, and the id it brings the subscriber up to. */
interface CatchUp {
  frames: Buffer;
  upTo: number;
}

/** Live events held for one subscriber during its replay, at most (a replay is one round trip). */
const MAX_HELD_BYTES = 8 * 1024 * 1024;

export interface RedisHubOptions {
  url: string;
  /** Prepended to every key and pub/sub channel, so several apps (or tests) can share a Redis. */
  prefix: string;
  historySize: number;
  maxChannels: number;
  /** How long `start` waits for Redis before giving up. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

export class RedisHub implements PubSub {
  readonly #options: RedisHubOptions;
  readonly #log: Logger;
  readonly #slack: number;
  /** Names this process as a lease holder. */
  readonly #holder = randomBytes(9).toString('base64url');
  #redis: RedisModule | undefined;
  /** Commands and scripts. Its offline queue is off: while Redis is away, calls fail at once (503) instead of piling up. */
  #command: RedisClient | undefined;
  /** The one pub/sub connection of this process. It queues while away, and resubscribes before it reports ready. */
  #subscriber: RedisClient | undefined;
  readonly #channels = new Map<string, LocalChannel>();
  readonly #groups = new Map<string, Group>();
  readonly #members = new Set<Member>();
  readonly #listeners = new ListenerCounts();
  #pending: HubEvent[] = [];
  #flushScheduled = false;
  #lastId = 0;
  /** Set when the subscriber connection drops: messages may have been missed since. */
  #feedBroken = false;
  #wasAvailable = false;
  #readyWaiters: Array<() => void> = [];
  #closed = false;
  readonly stats: HubStats = { published: 0, delivered: 0, resets: 0 };

  constructor(options: RedisHubOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#slack = Math.floor(options.historySize / 8);
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
        // published meanwhile never reached us: every subscriber replays from its own id.
        this.#feedBroken = false;
        for (const member of this.#members) void this.#replay(member);
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

  get subscriberCount(): number {
    return this.#members.size;
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  listenersOf(channel: string): number {
    return this.#listeners.of(channel);
  }

  onDemand(channel: string, watcher: (listening: boolean) => void): () => void {
    return this.#listeners.watch(channel, watcher);
  }

  /**
   * A lease in Redis: `SET NX PX` takes it, and its holder renews it. Whoever holds it runs the
   * job; if the holder goes quiet, it expires within `ttlMs` and another process takes over.
   */
  async holdLease(name: string, ttlMs: number): Promise<boolean> {
    if (!this.available) return false;
    try {
      return (await this.run(LEASE, [name, this.#holder, String(ttlMs)], 'take a lease')) === 1;
    } catch {
      return false;
    }
  }

  /**
   * Stores the event in its channel's stream and publishes it, in one script; resolves with
   * its id. This process's own subscribers get it back through pub/sub like everyone else's,
   * so there is one delivery path and one order.
   */
  async publish(input: PublishInput): Promise<{ id: number }> {
    // Refuse what cannot be framed (a line break in `event`) before anything is stored.
    formatEvent({ event: input.event, data: '' });
    const id = Number(await this.run(PUBLISH, [input.channel, eventBody(input)], 'publish'));
    this.#lastId = Math.max(this.#lastId, id);
    this.stats.published += 1;
    return { id };
  }

  /**
   * Runs a script with the shared arguments in front. Connection trouble becomes a 503 that
   * names the action; an error Redis itself answered (a bug) stays what it is.
   */
  async run(script: LuaScript, args: readonly string[], action: string): Promise<unknown> {
    const { prefix, historySize, maxChannels } = this.#options;
    const common = [prefix, String(Date.now()), String(historySize), String(this.#slack), String(maxChannels)];
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

  /**
   * Attaches a subscriber and returns its detach function at once; the replay runs behind it.
   * Live events arriving before the replay is written are held for it, not lost.
   */
  subscribe(subscriber: Subscriber, options: SubscribeOptions): () => void {
    const group = this.#join(options);
    const member: Member = {
      subscriber,
      options,
      group,
      upTo: undefined,
      replaying: true,
      held: [],
      heldBytes: 0,
      generation: 0,
      closed: false,
      // Asked now, not after the replay's round trips: a client that publishes as soon as its
      // stream opens must find its event after this position, and the command connection
      // answers in order.
      position:
        options.lastEventId === undefined && !options.snapshot
          ? this.run(POSITION, [], 'subscribe').then(Number, () => undefined)
          : undefined,
    };
    group.members.add(member);
    this.#members.add(member);
    this.#listeners.change(group.channels, +1);
    void this.#replay(member);
    return () => {
      if (member.closed) return;
      member.closed = true;
      this.#members.delete(member);
      // Counted down before leaving: leaving may forget the channel, and its count with it.
      this.#listeners.change(group.channels, -1);
      this.#leave(group, member);
    };
  }

  /**
   * Brings one subscriber up to date from the streams, then lets it go live. Runs when it
   * subscribes, and again after the subscriber connection comes back; a newer run overtakes
   * an older one. While Redis is away it waits, and tries again when Redis is back.
   */
  async #replay(member: Member): Promise<void> {
    const generation = ++member.generation;
    member.replaying = true;
    // Whatever was held is older than what the new replay will read: it reads from the same id.
    member.held = [];
    member.heldBytes = 0;
    const stale = () => member.closed || member.generation !== generation || this.#closed;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await delay(Math.min(100 * attempt, 1000), undefined, { ref: false });
      await this.#whenReady();
      if (stale()) return;
      try {
        // The channels must be subscribed before history is read: then every event is either
        // in what the replay reads, or arrives live (held), or both (dropped by id).
        await Promise.all(member.group.channels.map((name) => this.#subscribed(name)));
        if (stale()) return;
        const catchUp = await this.#catchUp(member);
        if (stale()) return;
        this.#goLive(member, catchUp);
        return;
      } catch (error) {
        if (stale()) return;
        this.#log('redis.replay_failed', { error: String((error as Error)?.message ?? error), attempt });
      }
    }
  }

  /** Reads what a subscriber needs before it goes live: a replay, a `reset`, or a snapshot. */
  async #catchUp(member: Member): Promise<CatchUp> {
    const { channels, key, snapshot, lastEventId } = member.options;
    const from = member.upTo ?? lastEventId;
    if (from === undefined) {
      if (snapshot) return this.#snapshot(snapshot);
      // A new client starts where the stream stood when it connected; anything published
      // since is replayed. The lone `id:` frame comes first, as in the in-process hub.
      const position = (await member.position) ?? Number(await this.run(POSITION, [], 'subscribe'));
      member.position = undefined;
      const history = await this.#history(channels, position);
      const missed = history.events.filter((event) => key === undefined || event.key === key);
      return {
        frames: Buffer.concat([Buffer.from(formatEvent({ id: String(position) })), ...missed.map((event) => event.frame)]),
        upTo: history.asOf,
      };
    }
    const history = await this.#history(channels, from);
    const reason = gapReason(history, from);
    if (reason !== undefined) {
      this.stats.resets += 1;
      if (snapshot) return this.#snapshot(snapshot);
      const reset = formatEvent({ event: 'reset', id: String(history.asOf), data: JSON.stringify({ reason }) });
      return { frames: Buffer.from(reset), upTo: history.asOf };
    }
    const missed = history.events.filter((event) => key === undefined || event.key === key);
    return { frames: Buffer.concat(missed.map((event) => event.frame)), upTo: history.asOf };
  }

  async #snapshot(snapshot: NonNullable<SubscribeOptions['snapshot']>): Promise<CatchUp> {
    const taken = await snapshot(this.#lastId);
    return { frames: Buffer.from(taken.frames), upTo: taken.upTo };
  }

  /** Every event after `after` on `channels`, oldest first, with what replay needs to spot a gap. */
  async #history(channels: readonly string[], after: number): Promise<History> {
    const reply = (await this.run(REPLAY, [String(after), ...channels], 'replay')) as unknown[];
    const history: History = {
      asOf: Number(reply[0]),
      firstId: Number(reply[1]),
      forgottenUpTo: Number(reply[2]),
      trimmedUpTo: [],
      events: [],
    };
    for (let index = 0; index < channels.length; index++) {
      history.trimmedUpTo.push(Number(reply[3 + 2 * index]));
      const entries = reply[4 + 2 * index] as Array<[string, string[]]>;
      for (const [entryId, fields] of entries) history.events.push(toHubEvent(Number.parseInt(entryId, 10), fields[1]!));
    }
    // Each stream is in id order; merging several needs one sort.
    if (channels.length > 1) history.events.sort((a, b) => a.id - b.id);
    if (history.asOf > this.#lastId) this.#lastId = history.asOf;
    return history;
  }

  /** Writes the replay, then the held live events it does not already cover, and goes live. */
  #goLive(member: Member, { frames, upTo }: CatchUp): void {
    if (frames.length > 0) member.subscriber.write(frames);
    // Assigned, not raised: after Redis lost its data, a reset may move the position back.
    member.upTo = upTo;
    const newer = member.held.filter((event) => event.id > upTo);
    member.held = [];
    member.heldBytes = 0;
    member.replaying = false;
    if (newer.length > 0) {
      member.subscriber.write(Buffer.concat(newer.map((event) => event.frame)));
      member.upTo = newer.at(-1)!.id;
      this.stats.delivered += newer.length;
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
    this.#pending.push(event);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  };

  /**
   * Writes every event received so far, one buffer per group. Pub/sub delivers in the order
   * Redis ran the scripts, which is id order, so each batch is in id order too. A member that
   * is replaying holds the events instead; one whose id is already past some of them (a replay
   * read them too) gets only the newer ones.
   */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    const touched = new Set<Group>();
    for (const event of pending) {
      for (const group of this.#channels.get(event.channel)?.groups ?? []) {
        if (group.key !== undefined && group.key !== event.key) continue;
        group.batch.push(event);
        touched.add(group);
      }
    }
    for (const group of touched) {
      const events = group.batch;
      group.batch = [];
      let shared: Buffer | undefined;
      for (const member of group.members) {
        if (member.replaying) {
          this.#hold(member, events);
          continue;
        }
        const upTo = member.upTo ?? 0;
        const fresh = events[0]!.id > upTo ? events : events.filter((event) => event.id > upTo);
        if (fresh.length === 0) continue;
        const bytes =
          fresh === events
            ? (shared ??= events.length === 1 ? events[0]!.frame : Buffer.concat(events.map((event) => event.frame)))
            : Buffer.concat(fresh.map((event) => event.frame));
        member.upTo = fresh.at(-1)!.id;
        member.subscriber.write(bytes);
        this.stats.delivered += fresh.length;
      }
    }
  }

  /** Holds live events for a replaying member; past the bound, the replay starts over instead. */
  #hold(member: Member, events: HubEvent[]): void {
    member.held.push(...events);
    for (const event of events) member.heldBytes += event.frame.length;
    // Starting over drops what was held: the new replay reads it from the streams.
    if (member.heldBytes > MAX_HELD_BYTES) void this.#replay(member);
  }

  #subscribed(name: string): Promise<void> {
    const channel = this.#channels.get(name);
    const subscriber = this.#subscriber;
    if (!channel || !subscriber) return Promise.resolve();
    channel.subscribed ??= subscriber.subscribe(this.#liveName(name), this.#onMessage).catch((error: unknown) => {
      channel.subscribed = undefined;
      throw error;
    });
    return channel.subscribed;
  }

  #liveName(channel: string): string {
    return `${this.#options.prefix}live:${channel}`;
  }

  #join({ channels, key }: SubscribeOptions): Group {
    const name = JSON.stringify([[...channels].sort(), key ?? null]);
    let group = this.#groups.get(name);
    if (!group) {
      group = { name, channels: [...channels], key, members: new Set(), batch: [] };
      this.#groups.set(name, group);
      for (const channelName of channels) {
        let channel = this.#channels.get(channelName);
        if (!channel) this.#channels.set(channelName, (channel = { groups: new Set(), subscribed: undefined }));
        channel.groups.add(group);
      }
    }
    return group;
  }

  #leave(group: Group, member: Member): void {
    group.members.delete(member);
    if (group.members.size > 0) return;
    this.#groups.delete(group.name);
    for (const name of group.channels) {
      const channel = this.#channels.get(name);
      if (!channel) continue;
      channel.groups.delete(group);
      if (channel.groups.size > 0) continue;
      // Nobody here follows it any more: stop receiving it (commands on one connection run in
      // order, so a SUBSCRIBE sent later for a new follower still wins).
      this.#channels.delete(name);
      if (channel.subscribed) this.#subscriber?.unsubscribe(this.#liveName(name), this.#onMessage).catch(() => {});
    }
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

  /** Resolves once both connections are up (at once if they are), or when the hub closes. */
  #whenReady(): Promise<void> {
    if (this.available || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /** Closes both connections; replays still waiting give up. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    await Promise.all(
      [this.#command, this.#subscriber].map(async (client) => {
        if (!client) return;
        // close() waits for replies; with Redis away there are none to wait for.
        if (client.isReady) await client.close().catch(() => client.destroy());
        else client.destroy();
      }),
    );
  }
}

interface History {
  /** The newest id at the moment of reading: every event up to it is in `events` (if on the channels). */
  asOf: number;
  /** The counter's starting value: ids below it come from before Redis lost its data. */
  firstId: number;
  forgottenUpTo: number;
  /** Per channel: the newest id trimmed from its stream, or -1 when it has no stream. */
  trimmedUpTo: number[];
  events: HubEvent[];
}

/** Why replay after `from` cannot be complete, or undefined when it can (the in-process hub's rules). */
function gapReason(history: History, from: number): string | undefined {
  if (from < history.firstId || from > history.asOf) return 'unknown-id';
  for (const trimmed of history.trimmedUpTo) {
    if ((trimmed === -1 ? history.forgottenUpTo : trimmed) > from) return 'history-exceeded';
  }
  return undefined;
}

function unavailable(action: string): HttpError {
  return new HttpError(503, `Cannot ${action}: the event store (Redis) is unreachable; try again shortly`, { 'Retry-After': '2' });
}
