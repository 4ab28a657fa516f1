/**
 * Configuration, read once from the environment and checked up front: a typo in an
 * environment variable stops the server at start with a message naming the variable, instead
 * of surfacing later as odd behaviour.
 */

export interface Config {
  /** TCP port; 0 picks a free one (tests use that). */
  port: number;
  host: string;
  /** Where the page and its assets live. */
  publicDir: string;
  /**
   * The heartbeat tick: an idle stream gets a comment within two ticks (a stream that wrote
   * since the last tick is skipped at it). 0 = never, which also stops the stall checks.
   */
  heartbeatMs: number;
  /** Sent as `retry:` on every stream: the browser's reconnect delay. */
  retryMs: number;
  /** Unread bytes a client may accumulate before it is disconnected. */
  maxBacklogBytes: number;
  /** Events each channel keeps for `Last-Event-ID` replay. */
  historySize: number;
  /** Channels the hub remembers; past this it forgets the least recently used idle one. */
  maxChannels: number;
  /** Bytes the hub's history may take in all (in Redis, with Redis); past it, the oldest events go first. */
  historyMaxBytes: number;
  /** Shared secret for publishing; unset means "publish from this machine only". */
  publishKey: string | undefined;
  /** The ticker's period on channel `sse` (0 = off). */
  tickMs: number;
  /** The status monitor's period (0 = off). */
  monitorIntervalMs: number;
  /** What the monitor probes; unset = this server's own flaky demo endpoint. */
  monitorUrl: URL | undefined;
  /** How long a probe may take before it counts as failed. */
  monitorTimeoutMs: number;
  /** Where orders, the history kept across a restart and the watch-token secret are kept. */
  dataDir: string;
  /** Secret for order watch tokens; unset = one generated and kept in DATA_DIR. */
  orderSecret: string | undefined;
  /** Orders kept at most. */
  maxOrders: number;
  /** The demo courier's period (0 = off). */
  courierMs: number;
  /** How long shutdown waits for streams and requests to finish before exiting anyway. */
  shutdownTimeoutMs: number;
  /** Largest request body accepted (413 past it). */
  maxBodyBytes: number;
  /** Open streams at most, in total (503 past it) and per client address (429 past it). */
  maxStreams: number;
  maxStreamsPerAddress: number;
  /** Chat messages and orders each client address may post per minute (429 past it). */
  postsPerMinute: number;
  /** Time a client gets to send its request headers, and its whole request (slowloris). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Origins allowed to use the API from another site (CORS); `*` allows any, without cookies. */
  allowedOrigins: readonly string[];
  /** Host names, besides loopback ones, under which requests from this machine may publish without a key. */
  allowedHosts: readonly string[];
  /** Behind a reverse proxy: take the client's address from the proxy's X-Forwarded-For. */
  trustProxy: boolean;
  /** Redis shared by several processes (channels, history, orders); unset = all in this process. */
  redisUrl: string | undefined;
  /** Prefix of every Redis key and pub/sub channel this server uses. */
  redisPrefix: string;
  /** Worker processes for `npm run cluster` (0 = one per CPU). */
  workers: number;
}

export const DEFAULTS: Config = {
  port: 8080,
  host: '127.0.0.1',
  publicDir: new URL('../../public/', import.meta.url).pathname,
  heartbeatMs: 15_000,
  retryMs: 3_000,
  maxBacklogBytes: 1024 * 1024,
  historySize: 1000,
  maxChannels: 10_000,
  historyMaxBytes: 64 * 1024 * 1024,
  publishKey: undefined,
  tickMs: 1000,
  monitorIntervalMs: 5000,
  monitorUrl: undefined,
  monitorTimeoutMs: 3000,
  dataDir: 'data',
  orderSecret: undefined,
  maxOrders: 10_000,
  courierMs: 3000,
  shutdownTimeoutMs: 5_000,
  maxBodyBytes: 64 * 1024,
  maxStreams: 10_000,
  maxStreamsPerAddress: 100,
  postsPerMinute: 30,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  allowedOrigins: [],
  allowedHosts: [],
  trustProxy: false,
  redisUrl: undefined,
  redisPrefix: 'sse:',
  workers: 0,
};

/** Reads a whole number from the environment, or the default when the variable is unset. */
function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new Error(`Invalid configuration: ${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/**
 * Reads a yes/no switch: `1` or `true` for on, `0` or `false` for off, unset for the default.
 * Anything else stops the server rather than reading as off: `TRUST_PROXY=yes` taken for "no"
 * would count every client behind the proxy as the proxy, one address for the whole site.
 */
function flag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (text === '1' || text === 'true') return true;
  if (text === '0' || text === 'false') return false;
  throw new Error(`Invalid configuration: ${name} must be 1, true, 0 or false, not ${JSON.stringify(text)}`);
}

/**
 * Reads a URL with one of `protocols` from the environment, or undefined when unset. A bad
 * value is named in the error unless it may hold a password (a Redis URL often does).
 */
function urlFrom(env: NodeJS.ProcessEnv, name: string, protocols: readonly string[], secret = false): URL | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || !protocols.includes(url.protocol)) {
    const allowed = protocols.map((protocol) => `${protocol}//`).join(' or ');
    throw new Error(`Invalid configuration: ${name} must be a ${allowed} URL${secret ? '' : `, not ${JSON.stringify(text)}`}`);
  }
  return url;
}

/** Reads a comma-separated list; unset or empty is an empty list. */
function list(env: NodeJS.ProcessEnv, name: string): string[] {
  return (env[name] ?? '').split(',').map((item) => item.trim()).filter(Boolean);
}

/** Builds the configuration from environment variables (see README for the list). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: integer(env, 'PORT', DEFAULTS.port, 0, 65_535),
    host: env['HOST'] || DEFAULTS.host,
    publicDir: DEFAULTS.publicDir,
    heartbeatMs: integer(env, 'HEARTBEAT_MS', DEFAULTS.heartbeatMs, 0, 3_600_000),
    retryMs: integer(env, 'RETRY_MS', DEFAULTS.retryMs, 0, 3_600_000),
    maxBacklogBytes: integer(env, 'MAX_BACKLOG_BYTES', DEFAULTS.maxBacklogBytes, 1024, 1024 ** 3),
    historySize: integer(env, 'HISTORY_SIZE', DEFAULTS.historySize, 0, 1_000_000),
    maxChannels: integer(env, 'MAX_CHANNELS', DEFAULTS.maxChannels, 1, 10_000_000),
    historyMaxBytes: integer(env, 'HISTORY_MAX_BYTES', DEFAULTS.historyMaxBytes, 64 * 1024, 2 ** 40),
    publishKey: env['PUBLISH_KEY'] || undefined,
    tickMs: integer(env, 'TICK_MS', DEFAULTS.tickMs, 0, 3_600_000),
    monitorIntervalMs: integer(env, 'MONITOR_INTERVAL_MS', DEFAULTS.monitorIntervalMs, 0, 3_600_000),
    monitorUrl: urlFrom(env, 'MONITOR_URL', ['http:', 'https:']),
    monitorTimeoutMs: integer(env, 'MONITOR_TIMEOUT_MS', DEFAULTS.monitorTimeoutMs, 1, 600_000),
    dataDir: env['DATA_DIR'] || DEFAULTS.dataDir,
    orderSecret: env['ORDER_SECRET'] || undefined,
    maxOrders: integer(env, 'MAX_ORDERS', DEFAULTS.maxOrders, 1, 10_000_000),
    courierMs: integer(env, 'COURIER_MS', DEFAULTS.courierMs, 0, 3_600_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', DEFAULTS.shutdownTimeoutMs, 0, 600_000),
    maxBodyBytes: integer(env, 'MAX_BODY_BYTES', DEFAULTS.maxBodyBytes, 1024, 16 * 1024 * 1024),
    maxStreams: integer(env, 'MAX_STREAMS', DEFAULTS.maxStreams, 1, 10_000_000),
    maxStreamsPerAddress: integer(env, 'MAX_STREAMS_PER_ADDRESS', DEFAULTS.maxStreamsPerAddress, 1, 10_000_000),
    postsPerMinute: integer(env, 'POSTS_PER_MINUTE', DEFAULTS.postsPerMinute, 1, 1_000_000),
    headersTimeoutMs: integer(env, 'HEADERS_TIMEOUT_MS', DEFAULTS.headersTimeoutMs, 100, 600_000),
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', DEFAULTS.requestTimeoutMs, 100, 3_600_000),
    trustProxy: flag(env, 'TRUST_PROXY', DEFAULTS.trustProxy),
    allowedOrigins: list(env, 'ALLOWED_ORIGINS'),
    allowedHosts: list(env, 'ALLOWED_HOSTS'),
    redisUrl: urlFrom(env, 'REDIS_URL', ['redis:', 'rediss:'], true)?.href,
    redisPrefix: env['REDIS_PREFIX'] || DEFAULTS.redisPrefix,
    workers: integer(env, 'WORKERS', DEFAULTS.workers, 0, 1024),
  };
}
