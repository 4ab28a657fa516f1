/**
 * The Redis client as this server uses it: loaded only when REDIS_URL asks for it, named by the
 * few calls it makes, and with Lua scripts sent by their hash.
 */
import { createHash } from 'node:crypto';

export type MessageListener = (message: string, channel: string) => void;

/**
 * The few node-redis calls this server makes. Naming them here keeps the Redis code free
 * of the client's many generic parameters, and documents exactly what we rely on.
 */
export interface RedisClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  on(event: 'error' | 'ready' | 'end' | 'reconnecting', listener: (error?: unknown) => void): unknown;
  close(): Promise<void>;
  destroy(): void;
}

export type RedisModule = typeof import('redis');

/**
 * Loads the `redis` client only when REDIS_URL asks for it: the server has no runtime
 * dependencies, and a server without Redis never needs the package.
 */
export async function loadRedis(): Promise<RedisModule> {
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
