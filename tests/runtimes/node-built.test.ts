/**
 * What `npm run build` compiles to dist/, run by plain Node (npm run start:dist): the suite in
 * ./suite.ts, then what only the build can break: the page it serves from the copied public/,
 * and the cluster entry, whose workers must run the compiled server.js, not server.ts.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { eventually } from '../support/harness.ts';
import { freePort, redisMissing, RedisServer } from '../support/redis-server.ts';
import { startServerProcess } from '../support/server-process.ts';
import { RUNTIMES } from './runtimes.ts';
import { describeRuntime } from './suite.ts';

describeRuntime('node-built');

const built = RUNTIMES.find((runtime) => runtime.id === 'node-built')!;
const sourceFile = (path: string) => new URL(`../../${path}`, import.meta.url).pathname;

it('npm run start:dist serves the page from the public/ the build copied', async () => {
  built.prepare!();
  const server = await startServerProcess({ command: built.command() });
  let code: number | null;
  try {
    const response = await fetch(server.url);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await response.text(), /<script[^>]+src="\/?app\.js"/);
  } finally {
    code = await server.stop();
  }
  assert.equal(code, 0, server.log());
});

it('npm run cluster:dist forks workers that run the compiled server', { skip: redisMissing() }, async () => {
  built.prepare!();
  const redis = await RedisServer.start();
  try {
    // A real port: with port 0, node:cluster would give each worker a port of its own.
    const cluster = await startServerProcess({
      command: built.command({ entry: sourceFile('lib/scale/cluster.ts') }),
      env: { REDIS_URL: redis.url, REDIS_PREFIX: 'built-cluster', WORKERS: '2', PORT: String(await freePort()) },
    });
    let code: number | null;
    try {
      await eventually(() => (cluster.log().match(/"event":"server\.listening"/g) ?? []).length === 2, 20_000, 'the second worker');
      const response = await fetch(new URL('/events', cluster.url));
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      await response.body!.cancel();
    } finally {
      code = await cluster.stop();
    }
    assert.equal(code, 0, cluster.log());
  } finally {
    await redis.stop();
  }
});
