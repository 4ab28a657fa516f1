/**
 * `npm run cluster`: several server processes on one port, sharing Redis.
 *
 * node:cluster forks WORKERS copies of server.ts (0 = one per CPU); the primary accepts
 * connections on the one port and hands them to the workers in turn. Each worker is a whole
 * server with its own streams, and Redis (REDIS_URL) is what they share: channels, ids,
 * history and orders. Without Redis each worker would have its own hub, and an event published
 * on one would never reach clients on another, so clustering without REDIS_URL is refused.
 *
 * A worker that dies is replaced (its clients reconnect to the others and resume with
 * Last-Event-ID). SIGTERM or Ctrl-C is passed on to every worker, which shuts down gracefully.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../http/config.ts';
import { stderrLogger } from '../http/log.ts';

/** Replacing a worker that keeps dying at once would spin; past this many quick deaths, give up. */
const MAX_QUICK_RESTARTS = 5;
const QUICK_MS = 5000;

function main(): void {
  const config = loadConfig(process.env);
  if (config.redisUrl === undefined) {
    throw new Error('Cannot run a cluster without REDIS_URL: each process would have its own hub, and events published on one would never reach clients of another');
  }
  const workers = config.workers || availableParallelism();
  // Workers run the server file beside this one's tree, with the flags this process started
  // with (tsx's loader included): server.ts from source, server.js once `npm run build` has
  // compiled both to dist/ (the compiler rewrites imports, not URLs, hence the extension).
  const server = new URL(`../../server${extname(import.meta.url)}`, import.meta.url);
  cluster.setupPrimary({ exec: fileURLToPath(server) });
  let stopping = false;
  let quickDeaths = 0;
  const fork = () => {
    const started = Date.now();
    const worker = cluster.fork();
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      stderrLogger('cluster.worker_exit', { pid: worker.process.pid, code, signal });
      quickDeaths = Date.now() - started < QUICK_MS ? quickDeaths + 1 : 0;
      if (quickDeaths > MAX_QUICK_RESTARTS) {
        stderrLogger('cluster.failed', { error: 'workers keep exiting at start; see their log lines above' });
        process.exit(1);
      }
      fork();
    });
  };
  for (let index = 0; index < workers; index++) fork();
  stderrLogger('cluster.started', { workers });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    // Ctrl-C reaches every process of the terminal's group, workers included; passing it on
    // too would count as their second Ctrl-C ("exit now"). SIGTERM comes to us alone.
    if (signal === 'SIGTERM') for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

try {
  main();
} catch (error) {
  stderrLogger('cluster.failed', { error: String(error instanceof Error ? error.message : error) });
  process.exit(1);
}
