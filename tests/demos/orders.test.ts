import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { OrderStore } from '../../lib/demos/orders/store.ts';
import { jsonBody, startApp, StreamClient, type Running } from '../support/harness.ts';

async function call(running: Running, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(new URL(path, running.url), {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function createOrder(running: Running, body: unknown = { item: 'Teapot' }) {
  const response = await call(running, 'POST', '/orders', body);
  assert.equal(response.status, 201);
  return (await jsonBody(response)) as { order: { id: string; status: string }; token: string; watch: string };
}

const statusesOf = (client: StreamClient) =>
  client.events.filter((event) => event.type === 'order_update').map((event) => JSON.parse(event.data).status as string);

describe('orders and /order_monitor', async () => {
  const running = await startApp();
  after(() => running.close());

  it('creates an order with a watch token, and follows legal status changes only', async () => {
    const { order, token, watch } = await createOrder(running);
    assert.equal(order.status, 'created');
    assert.equal(watch, `/order_monitor?order=${order.id}&token=${token}`);
    const move = (status: unknown) => call(running, 'POST', `/orders/${order.id}/status`, { status });
    assert.equal((await move('paid')).status, 200);
    const illegal = await move('delivered');
    assert.equal(illegal.status, 409);
    assert.match((await jsonBody(illegal)).error, /from paid to delivered/);
    assert.equal((await move('teleported')).status, 400);
    assert.equal((await move(7)).status, 400);
    assert.equal((await call(running, 'POST', '/orders/ord_nope/status', { status: 'paid' })).status, 404);
    const fetched = await jsonBody(await call(running, 'GET', `/orders/${order.id}?token=${token}`));
    assert.deepEqual(fetched.history.map((step: { status: string }) => step.status), ['created', 'paid']);
    const list = await jsonBody(await call(running, 'GET', '/orders'));
    assert.ok(list.orders.some((candidate: { id: string }) => candidate.id === order.id));
  });

  it('refuses bad orders with a 400', async () => {
    for (const body of [{ item: '' }, { item: 'x'.repeat(101) }, { item: 5 }, { demo: 'yes' }]) {
      assert.equal((await call(running, 'POST', '/orders', body)).status, 400, JSON.stringify(body));
    }
  });

  it('streams a snapshot, then live updates, for one order, and nothing of other orders', async () => {
    const mine = await createOrder(running);
    const other = await createOrder(running);
    const client = new StreamClient(new URL(mine.watch, running.url));
    await client.waitForEvents(1);
    await call(running, 'POST', `/orders/${other.order.id}/status`, { status: 'paid' });
    await call(running, 'POST', `/orders/${mine.order.id}/status`, { status: 'paid' });
    await call(running, 'POST', `/orders/${mine.order.id}/status`, { status: 'shipped' });
    await client.waitForEvents(3);
    assert.deepEqual(statusesOf(client), ['created', 'paid', 'shipped']);
    assert.ok(client.events.every((event) => JSON.parse(event.data).id === mine.order.id));
    client.abort();
  });

  it('resumes after Last-Event-ID with exactly the missed updates', async () => {
    const { order, watch } = await createOrder(running);
    const first = new StreamClient(new URL(watch, running.url));
    await first.waitForEvents(1);
    first.abort();
    const seen = first.events[0]!.lastEventId;
    await call(running, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
    await call(running, 'POST', `/orders/${order.id}/status`, { status: 'cancelled' });
    const again = new StreamClient(new URL(watch, running.url), { 'Last-Event-ID': seen });
    await again.waitForEvents(2);
    assert.deepEqual(statusesOf(again), ['paid', 'cancelled']);
    again.abort();
  });

  it('sends a fresh snapshot instead of a reset when history cannot cover the gap', async () => {
    const { order, watch } = await createOrder(running);
    const client = new StreamClient(new URL(watch, running.url), { 'Last-Event-ID': '1' });
    const [snapshot] = await client.waitForEvents(1);
    assert.equal(snapshot!.type, 'order_update');
    assert.equal(JSON.parse(snapshot!.data).id, order.id);
    client.abort();
  });

  it('delivers an update fired during connection setup exactly once', async () => {
    for (let round = 0; round < 20; round++) {
      const { order, watch } = await createOrder(running);
      const client = new StreamClient(new URL(watch, running.url));
      // The update races the subscription: it may land before the snapshot, or after.
      const update = call(running, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
      await update;
      await client.waitForEvents(1);
      const done = () => statusesOf(client).includes('paid');
      if (!done()) await client.waitForEvents(2);
      // One more change, so a late duplicate of "paid" would show up before it.
      await call(running, 'POST', `/orders/${order.id}/status`, { status: 'shipped' });
      await client.waitForEvents(statusesOf(client).length + 1);
      const statuses = statusesOf(client);
      assert.equal(statuses.filter((status) => status === 'paid').length, 1, `round ${round}: ${statuses}`);
      assert.equal(statuses.at(-1), 'shipped');
      client.abort();
    }
  });

  it('guards watching: one order needs its token, all orders need publisher access', async () => {
    const { order, token } = await createOrder(running);
    const other = await createOrder(running);
    const status = async (path: string) => (await fetch(new URL(path, running.url))).status;
    assert.equal(await status(`/order_monitor?order=${order.id}`), 401);
    assert.equal(await status(`/order_monitor?order=${order.id}&token=${other.token}`), 403);
    assert.equal(await status(`/order_monitor?order=${order.id}&token=${token}x`), 403);
    assert.equal(await status(`/orders/${order.id}?token=${other.token}`), 403);
    assert.equal(await status('/order_monitor?order=ord_unknown&token=abc'), 403);
    const outsider = await startApp({ clientAddress: () => '198.51.100.7', dataDir: running.app.config.dataDir });
    assert.equal((await fetch(new URL('/order_monitor', outsider.url))).status, 403);
    assert.equal((await fetch(new URL('/orders', outsider.url))).status, 403);
    assert.equal((await fetch(new URL(`/orders/${order.id}`, outsider.url))).status, 403);
    const moved = await fetch(new URL(`/orders/${order.id}/status`, outsider.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ status: 'paid' }),
    });
    assert.equal(moved.status, 403);
    // The token works from anywhere: it is the customer's link.
    assert.equal((await fetch(new URL(`/orders/${order.id}?token=${token}`, outsider.url))).status, 200);
    await outsider.close();
  });

  it('streams every order to a publisher: a snapshot of each, then updates', async () => {
    const own = await startApp();
    const a = await createOrder(own, { item: 'A' });
    const b = await createOrder(own, { item: 'B' });
    const client = new StreamClient(new URL('/order_monitor', own.url));
    await client.waitForEvents(2);
    await call(own, 'POST', `/orders/${b.order.id}/status`, { status: 'paid' });
    await client.waitForEvents(3);
    assert.deepEqual(
      client.events.map((event) => [JSON.parse(event.data).item, JSON.parse(event.data).status]),
      [['A', 'created'], ['B', 'created'], ['B', 'paid']],
    );
    assert.ok(a.order.id);
    client.abort();
    await own.close();
  });

  it('keeps orders and their tokens across a restart', async () => {
    const first = await startApp();
    const { order, token } = await createOrder(first);
    await call(first, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
    await first.app.shutdown();
    const second = await startApp({ dataDir: first.app.config.dataDir });
    const response = await fetch(new URL(`/orders/${order.id}?token=${token}`, second.url));
    assert.equal(response.status, 200);
    assert.equal((await jsonBody(response)).status, 'paid');
    await second.close();
  });

  it('moves demo orders along while someone watches', async () => {
    const own = await startApp({ courierMs: 10 });
    const { watch } = await createOrder(own, { item: 'Demo', demo: true });
    const client = new StreamClient(new URL(watch, own.url));
    await client.waitForEvents(6, 10_000);
    assert.deepEqual(statusesOf(client), ['created', 'paid', 'shipped', 'in_transit', 'out_for_delivery', 'delivered']);
    client.abort();
    await own.close();
  });
});

describe('the order store on disk', () => {
  it('survives being killed mid-write: the files load, and every acknowledged change is in them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orders-crash-'));
    // A separate process creating and paying for orders as fast as it can, printing each id once
    // both changes are saved. Two log lines per order: the log is compacted at 500 orders and at 1,000.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { OrderStore } from ${JSON.stringify(new URL('../../lib/demos/orders/store.ts', import.meta.url).href)};
         const hub = { publish: async () => ({ id: 0 }) };
         const store = new OrderStore(${JSON.stringify(dir)}, { maxOrders: 1e6, hub, logger: () => {} });
         for (;;) {
           const order = await store.create({ item: 'x'.repeat(100), demo: false });
           await store.setStatus(order.id, 'paid');
           process.stdout.write(order.id + '\\n');
         }`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let acknowledged: string[] = [];
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the writer never saved 1,200 orders')), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
        acknowledged = output.split('\n').slice(0, -1);
        if (acknowledged.length >= 1200 && !child.killed) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.once('exit', resolve));
    // Loading refuses a damaged orders.json or orders.log, so loading at all shows both are whole.
    const store = new OrderStore(dir, { maxOrders: 1e6, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
    const saved = new Map((await store.list()).map((order) => [order.id, order.status]));
    for (const id of acknowledged) assert.equal(saved.get(id), 'paid', `acknowledged order ${id} was lost`);
    const files = readdirSync(dir);
    assert.ok(files.includes('orders.json'), 'the log was never compacted');
    assert.ok(files.every((name) => name === 'orders.json' || name === 'orders.log' || name.endsWith('.tmp')), String(files));
  });
});
