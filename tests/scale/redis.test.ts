/**
 * What only Redis adds: a store that can go away and come back, a pub/sub connection that can
 * be cut, leases that let one process of many run a demo timer, and several real processes
 * (killed with SIGKILL, or run as a cluster). What every backend promises, Redis included, is
 * the contract in tests/contract/, which runs against both.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createClient } from 'redis';
import type { AppOptions } from '../../server.ts';
import { eventually, jsonBody, post, postAccepted, startApp, StreamClient, until, type Running } from '../support/harness.ts';
import { freePort, redisMissing, RedisServer } from '../support/redis-server.ts';

const skip = redisMissing();
if (skip) console.log(`# ${skip}`);

/** A key prefix of its own for each test, so tests sharing one Redis never see each other. */
const freshPrefix = () => `t${randomBytes(4).toString('hex')}:`;

const publish = (node: Running, channel: string, data: string) => postAccepted(new URL('/publish', node.url), { channel, data });

const dataOf = (client: StreamClient) => client.events.map((event) => event.data);
const statusesOf = (client: StreamClient) =>
  client.events.filter((event) => event.type === 'order_update').map((event) => JSON.parse(event.data).status as string);

describe('scaling out through Redis', { skip }, async () => {
  const redis = await RedisServer.start();
  const nodes: Running[] = [];
  const clients: StreamClient[] = [];
  /** A server in this process with its own Redis connections, sharing `prefix` with its peers. */
  const node = async (prefix: string, options: AppOptions = {}, server = redis): Promise<Running> => {
    const running = await startApp({ redisUrl: server.url, redisPrefix: prefix, ...options });
    nodes.push(running);
    return running;
  };
  const stream = (at: Running, path: string, headers: Record<string, string> = {}) => {
    const client = new StreamClient(new URL(path, at.url), headers);
    clients.push(client);
    return client;
  };
  after(async () => {
    for (const client of clients) client.abort();
    for (const running of nodes) {
      await running.close();
      await running.app.hub.close();
    }
    await redis.stop();
  });

  it('counts history bytes exactly per side: one ledger entry per stored event, totals within each share', async () => {
    // What the history-limits contract (tests/contract/) checks through replays, seen in Redis's
    // own keys: 1 MiB, so 768 KiB for publishers and 256 KiB for the chat; eight channels, two
    // for the chat. Trimming to HISTORY_SIZE, the budget and forgetting channels all release bytes.
    const prefix = freshPrefix();
    const options = { maxChannels: 8, historyMaxBytes: 1024 * 1024, historySize: 50 };
    const [a, b] = [await node(prefix, options), await node(prefix, options)];
    for (let index = 0; index < 300; index++) await publish(index % 2 ? a : b, `c${index % 5}`, `${index} ${'x'.repeat(8192)}`);
    // Chat on ten names first (so chat channels are forgotten), then on two (so its bytes fill up).
    for (let index = 0; index < 200; index++) {
      const channel = index < 20 ? `chat${index % 10}` : `lounge${index % 2}`;
      const response = await post(new URL('/messages', (index % 2 ? a : b).url), { channel, message: 'm'.repeat(2000) });
      assert.equal(response.status, 202);
    }
    const admin = createClient({ url: redis.url });
    await admin.connect();
    after(() => admin.close());
    const number = async (...command: string[]) => Number(await admin.sendCommand(command));
    const sides = [
      { channels: 'channels', ledger: 'ledger', bytes: 'bytes', maxChannels: 6, maxBytes: 768 * 1024 },
      { channels: 'public-channels', ledger: 'public-ledger', bytes: 'public-bytes', maxChannels: 2, maxBytes: 256 * 1024 },
    ];
    for (const side of sides) {
      const names = (await admin.sendCommand(['ZRANGE', `${prefix}${side.channels}`, '0', '-1'])) as string[];
      let stored = 0;
      let bodies = 0;
      for (const name of names) {
        const entries = (await admin.sendCommand(['XRANGE', `${prefix}stream:${name}`, '-', '+'])) as Array<[string, string[]]>;
        stored += entries.length;
        for (const [, fields] of entries) bodies += Buffer.byteLength(fields[1]!) + 128;
      }
      const bytes = await number('GET', `${prefix}${side.bytes}`);
      assert.ok(names.length <= side.maxChannels, `${names.length} ${side.channels}`);
      assert.equal(await number('XLEN', `${prefix}${side.ledger}`), stored, `one ${side.ledger} entry per stored event`);
      assert.equal(bytes, bodies, `${side.bytes} is what the stored events cost`);
      assert.ok(bytes <= side.maxBytes && bytes > side.maxBytes * 0.9, `${side.bytes}: ${bytes}`);
    }
  });

  it('catches up from the streams after the subscriber connection drops, without closing streams', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await node(prefix), await node(prefix)];
    const client = stream(a, '/stream?channel=hiccup');
    await client.live();
    await publish(b, 'hiccup', 'before');
    await client.waitForEvents(1);
    // Cut every pub/sub connection (both nodes'), then publish at once through B's command
    // connection: some of these land while A is still reconnecting, and only the streams have them.
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    await admin.close();
    for (let index = 0; index < 100; index++) await b.app.hub.publish({ channel: 'hiccup', data: String(index) });
    await until(client, 'change', () => client.events.at(-1)?.data === '99', 10_000);
    assert.deepEqual(dataOf(client), ['before', ...Array.from({ length: 100 }, (_, index) => String(index))]);
    assert.equal(client.ended, false);
  });

  it('while Redis is down: 503 for writes, degraded health, streams kept open with heartbeats; then resumes with nothing lost', async () => {
    const server = await RedisServer.start({ persistent: true });
    try {
      const prefix = freshPrefix();
      const a = await node(prefix, { heartbeatMs: 100 }, server);
      const client = stream(a, '/stream?channel=outage');
      await client.live();
      const before = await publish(a, 'outage', 'before');
      await client.waitForEvents(1);

      await server.stop();
      await eventually(() => !a.app.hub.available, 10_000, 'the node to notice');
      const refused = await post(new URL('/publish', a.url), { channel: 'outage', data: 'lost?' });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '2');
      assert.match((await jsonBody(refused)).error, /Cannot publish: .*Redis.* unreachable/);
      assert.equal((await post(new URL('/orders', a.url), { item: 'Teapot' })).status, 503);
      const health = await fetch(new URL('/healthz', a.url));
      assert.equal(health.status, 200);
      assert.equal((await jsonBody(health)).status, 'degraded');
      const heartbeats = client.decoder.comments.length;
      await until(client, 'change', () => client.decoder.comments.length >= heartbeats + 2, 5000);
      assert.equal(client.ended, false);

      await server.start();
      await eventually(() => a.app.hub.available, 15_000, 'the node to reconnect');
      assert.equal((await jsonBody(await fetch(new URL('/healthz', a.url)))).status, 'ok');
      await publish(a, 'outage', 'after');
      await client.waitForEvents(2, 10_000);
      assert.deepEqual(dataOf(client), ['before', 'after']);
      // History survived the restart: a client resuming from "before" gets "after", on a new node too.
      const b = await node(prefix, {}, server);
      const resumed = stream(b, '/stream?channel=outage', { 'Last-Event-ID': before });
      assert.deepEqual((await resumed.waitForEvents(1)).map((event) => event.data), ['after']);
      resumed.abort();
      client.abort();
      await b.close();
      await b.app.hub.close();
      await a.close();
      await a.app.hub.close();
    } finally {
      await server.stop();
    }
  });

  it('lets only one node hold a demo lease at a time', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await node(prefix), await node(prefix)];
    assert.equal(await a.app.hub.holdLease('ticker', 5000), true);
    assert.equal(await b.app.hub.holdLease('ticker', 5000), false);
    assert.equal(await a.app.hub.holdLease('ticker', 5000), true, 'the holder renews');
  });

  describe('orders shared by every node', () => {
    const call = (at: Running, method: string, path: string, body?: unknown) =>
      fetch(new URL(path, at.url), {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const create = async (at: Running, body: unknown = { item: 'Teapot' }) => {
      const response = await call(at, 'POST', '/orders', body);
      assert.equal(response.status, 201);
      return (await jsonBody(response)) as { order: { id: string }; token: string; watch: string };
    };

    // Every order in creation order, whichever node took it, is in the contract
    // ('streams every order to a publisher: a snapshot of each, then updates').
    it('moves demo orders once per step with two couriers', async () => {
      const prefix = freshPrefix();
      const [a, b] = [await node(prefix, { courierMs: 10 }), await node(prefix, { courierMs: 10 })];
      // A watcher on each node: both couriers run, and only the lease holder moves orders.
      const { watch } = await create(a, { item: 'Demo', demo: true });
      const onA = stream(a, watch);
      const onB = stream(b, watch);
      const steps = ['created', 'paid', 'shipped', 'in_transit', 'out_for_delivery', 'delivered'];
      for (const client of [onA, onB]) {
        await until(client, 'change', () => statusesOf(client).at(-1) === 'delivered', 10_000);
        // The courier may move the order before a watcher's snapshot is read, so a watcher
        // starts at some step; from there it sees every step once, none skipped, none twice.
        const seen = statusesOf(client);
        assert.deepEqual(seen, steps.slice(steps.indexOf(seen[0]!)));
      }
    });
  });

  describe('real processes', () => {
    const children: ChildProcess[] = [];
    after(() => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    });
    const env = (prefix: string) => ({
      ...process.env,
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      HOST: '127.0.0.1',
      DATA_DIR: mkdtempSync(join(tmpdir(), 'sse-node-')),
      TICK_MS: '0',
      MONITOR_INTERVAL_MS: '0',
      COURIER_MS: '0',
      MAX_STREAMS_PER_ADDRESS: '100000',
    });
    /** Starts `node --import tsx <file>` and resolves with the child, the first URL it prints, and all it printed. */
    const spawnNode = async (file: string, environment: NodeJS.ProcessEnv, pattern: RegExp, from: 'stdout' | 'stderr' = 'stdout') => {
      const child = spawn(process.execPath, ['--import', 'tsx', file], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let output = '';
      const url = await new Promise<URL>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${output}`)), 20_000);
        child.once('exit', (code) => reject(new Error(`${file} exited with ${code}:\n${output}`)));
        child[from]!.on('data', (chunk: Buffer) => {
          output += chunk;
          const match = pattern.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(new URL(match[1]!));
          }
        });
      });
      return { child, url, output: () => output };
    };
    const nodeFile = new URL('../support/redis-node.ts', import.meta.url).pathname;

    it('loses nothing when a node is killed -9 mid-stream: the client resumes on the other node', async () => {
      const prefix = freshPrefix();
      const first = await spawnNode(nodeFile, env(prefix), /^(http:\S+)$/m);
      const second = await spawnNode(nodeFile, env(prefix), /^(http:\S+)$/m);
      const client = new StreamClient(new URL('/stream?channel=crash', first.url));
      clients.push(client);
      await client.live();
      const total = 300;
      let killed = false;
      for (let index = 0; index < total; index++) {
        const response = await post(new URL('/publish', second.url), { channel: 'crash', data: String(index) });
        assert.equal(response.status, 202);
        if (index === 100) {
          await until(client, 'change', () => client.events.length >= 50, 10_000);
          first.child.kill('SIGKILL');
          killed = true;
        }
      }
      assert.ok(killed);
      await client.waitForEnd(10_000);
      const resumed = new StreamClient(new URL('/stream?channel=crash', second.url), { 'Last-Event-ID': client.events.at(-1)!.lastEventId });
      clients.push(resumed);
      await until(resumed, 'change', () => resumed.events.at(-1)?.data === String(total - 1), 10_000);
      const received = [...dataOf(client), ...dataOf(resumed)];
      assert.deepEqual(received, Array.from({ length: total }, (_, index) => String(index)));
      second.child.kill('SIGTERM');
      await once(second.child, 'exit');
    });

    it('npm run cluster: refuses without REDIS_URL, and serves from several workers on one port with it', async () => {
      const clusterFile = new URL('../../lib/scale/cluster.ts', import.meta.url).pathname;
      const { REDIS_URL: _, ...noRedis } = env(freshPrefix());
      const refused = spawn(process.execPath, ['--import', 'tsx', clusterFile], { env: { ...noRedis, WORKERS: '2' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      refused.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
      const [code] = await once(refused, 'exit');
      assert.equal(code, 1);
      assert.match(stderr, /Cannot run a cluster without REDIS_URL/);

      const prefix = freshPrefix();
      // A real port: with port 0, node:cluster would give each worker a port of its own.
      const port = String(await freePort());
      const { child, url, output } = await spawnNode(clusterFile, { ...env(prefix), WORKERS: '2', PORT: port }, /"server\.listening","url":"([^"]+)"/, 'stderr');
      await eventually(() => (output().match(/"server\.listening","url":"([^"]+)"/g) ?? []).length === 2, 20_000, 'the second worker');
      assert.equal(new Set(output().match(/"server\.listening","url":"[^"]+"/g)).size, 1, 'both workers on one port');
      const client = new StreamClient(new URL('/stream?channel=clustered', url));
      clients.push(client);
      await client.live();
      for (let index = 0; index < 5; index++) await publish({ url } as Running, 'clustered', String(index));
      await client.waitForEvents(5);
      assert.deepEqual(dataOf(client), ['0', '1', '2', '3', '4']);
      client.abort();
      child.kill('SIGTERM');
      const [exitCode] = await once(child, 'exit');
      assert.equal(exitCode, 0);
    });
  });
});
