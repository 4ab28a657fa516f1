/**
 * The two backends the contract suites run against, as a test sees them: a way to start real
 * servers over one fresh, empty store.
 *
 * - **In-process** (the default): channels, history and orders live in the server's memory and
 *   its data directory. Nothing is shared between two servers while they run.
 * - **Redis** (`REDIS_URL`): they live in a private `redis-server` started for the test run,
 *   under a key prefix of their own; every server given that prefix shares them.
 *
 * A contract suite asks for two servers, "node A" and "node B", and uses both: it publishes on
 * one and listens on the other, reconnects a client to the other, and so on. With Redis they
 * are two servers sharing one store, so every rule is also checked across servers. In one
 * process there is no second server to share with, so A and B are one and the same server,
 * and the same test checks the same rule there.
 */
import { randomBytes } from 'node:crypto';
import type { AppOptions } from '../../server.ts';
import { startApp, type Running } from '../support/harness.ts';
import { redisMissing, RedisServer } from '../support/redis-server.ts';

export interface Backend {
  /** How the suites name it: "in-process" or "Redis". */
  readonly name: string;
  /** Why it cannot run here (redis-server not installed), or undefined when it can. */
  readonly skip: string | undefined;
  /**
   * Node A and node B over one new, empty store. In-process they are the same server; with
   * Redis, two servers sharing one key prefix.
   */
  nodes(options?: AppOptions): Promise<[Running, Running]>;
  /**
   * Another server over `node`'s store, started now: in-process, on the same data directory,
   * so it reads what `node` saved there; with Redis, on the same key prefix.
   */
  another(node: Running, options?: AppOptions): Promise<Running>;
  /** Closes every server it started (twice is harmless), then what it needs (redis-server). */
  close(): Promise<void>;
}

/** Closes a server and lets go of its store's connections (Redis; nothing to do in one process). */
async function closeNode(node: Running): Promise<void> {
  await node.close();
  await node.app.hub.close();
}

/** The default backend: everything in the server's own memory and data directory. */
export function inProcess(): Backend {
  const started: Running[] = [];
  const start = async (options: AppOptions) => {
    const node = await startApp(options);
    started.push(node);
    return node;
  };
  return {
    name: 'in-process',
    skip: undefined,
    async nodes(options = {}) {
      const node = await start(options);
      return [node, node];
    },
    another: (node, options = {}) => start({ ...options, dataDir: node.app.config.dataDir }),
    async close() {
      for (const node of started.splice(0)) await closeNode(node);
    },
  };
}

/**
 * Redis through a private `redis-server`, started on first use. When redis-server is not
 * installed, `skip` says so (and under CI, where it must be installed, this throws).
 */
export function redis(): Backend {
  const skip = redisMissing();
  let server: Promise<RedisServer> | undefined;
  const started: Running[] = [];
  const start = async (prefix: string, options: AppOptions) => {
    server ??= RedisServer.start();
    const node = await startApp({ ...options, redisUrl: (await server).url, redisPrefix: prefix });
    started.push(node);
    return node;
  };
  return {
    name: 'Redis',
    skip,
    async nodes(options = {}) {
      // A key prefix of its own is a store of its own: tests sharing one Redis never meet.
      const prefix = `t${randomBytes(4).toString('hex')}:`;
      return [await start(prefix, options), await start(prefix, options)];
    },
    another: (node, options = {}) => start(node.app.config.redisPrefix, options),
    async close() {
      for (const node of started.splice(0)) await closeNode(node);
      if (server) await (await server).stop();
    },
  };
}
