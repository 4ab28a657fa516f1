/**
 * The orders contract, written once and run against every backend (./backends.ts): creating
 * orders, the status state machine, watch tokens and publisher access, and `/order_monitor`
 * (a snapshot, then live updates, resumable, with a fresh snapshot instead of a gap), whether
 * orders live in this process's data directory or in Redis.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonBody, StreamClient, type Running } from '../support/harness.ts';
import type { Backend } from './backends.ts';

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

export function ordersContract(backend: Backend): void {
  describe('orders and /order_monitor', async () => {
    // Node A and node B share one store (with Redis; in one process they are one server).
    const [a, b] = await backend.nodes();

    it('creates an order with a watch token, and follows legal status changes only', async () => {
      const { order, token, watch } = await createOrder(a);
      assert.equal(order.status, 'created');
      assert.equal(watch, `/order_monitor?order=${order.id}&token=${token}`);
      const move = (status: unknown) => call(b, 'POST', `/orders/${order.id}/status`, { status });
      assert.equal((await move('paid')).status, 200);
      const illegal = await move('delivered');
      assert.equal(illegal.status, 409);
      assert.match((await jsonBody(illegal)).error, /from paid to delivered/);
      assert.equal((await move('teleported')).status, 400);
      assert.equal((await move(7)).status, 400);
      assert.equal((await call(a, 'POST', '/orders/ord_nope/status', { status: 'paid' })).status, 404);
      const fetched = await call(b, 'GET', `/orders/${order.id}?token=${token}`);
      assert.equal(fetched.status, 200);
      assert.deepEqual((await jsonBody(fetched)).history.map((step: { status: string }) => step.status), ['created', 'paid']);
      const list = await jsonBody(await call(a, 'GET', '/orders'));
      assert.ok(list.orders.some((candidate: { id: string }) => candidate.id === order.id));
    });

    it('refuses bad orders with a 400', async () => {
      for (const body of [{ item: '' }, { item: 'x'.repeat(101) }, { item: 5 }, { demo: 'yes' }]) {
        assert.equal((await call(a, 'POST', '/orders', body)).status, 400, JSON.stringify(body));
      }
    });

    it('streams a snapshot, then live updates, for one order, and nothing of other orders', async () => {
      const mine = await createOrder(a);
      const other = await createOrder(a);
      const client = new StreamClient(new URL(mine.watch, b.url));
      await client.waitForEvents(1);
      await call(a, 'POST', `/orders/${other.order.id}/status`, { status: 'paid' });
      await call(a, 'POST', `/orders/${mine.order.id}/status`, { status: 'paid' });
      await call(b, 'POST', `/orders/${mine.order.id}/status`, { status: 'shipped' });
      await client.waitForEvents(3);
      assert.deepEqual(statusesOf(client), ['created', 'paid', 'shipped']);
      assert.ok(client.events.every((event) => JSON.parse(event.data).id === mine.order.id));
      client.abort();
    });

    it('resumes after Last-Event-ID with exactly the missed updates', async () => {
      const { order, watch } = await createOrder(a);
      const first = new StreamClient(new URL(watch, a.url));
      await first.waitForEvents(1);
      first.abort();
      const seen = first.events[0]!.lastEventId;
      await call(a, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
      await call(a, 'POST', `/orders/${order.id}/status`, { status: 'cancelled' });
      const again = new StreamClient(new URL(watch, b.url), { 'Last-Event-ID': seen });
      await again.waitForEvents(2);
      assert.deepEqual(statusesOf(again), ['paid', 'cancelled']);
      again.abort();
    });

    it('sends a fresh snapshot instead of a reset when history cannot cover the gap', async () => {
      const { order, watch } = await createOrder(a);
      await call(a, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
      const client = new StreamClient(new URL(watch, b.url), { 'Last-Event-ID': '1' });
      const [snapshot] = await client.waitForEvents(1);
      assert.equal(snapshot!.type, 'order_update');
      assert.equal(JSON.parse(snapshot!.data).id, order.id);
      // The order as it stands now, not the history that could not be replayed.
      assert.deepEqual(statusesOf(client), ['paid']);
      client.abort();
    });

    it('delivers an update fired during connection setup exactly once', async () => {
      for (let round = 0; round < 20; round++) {
        const { order, watch } = await createOrder(a);
        const client = new StreamClient(new URL(watch, b.url));
        // The update races the subscription: it may land before the snapshot, or after.
        const update = call(a, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
        await update;
        await client.waitForEvents(1);
        const done = () => statusesOf(client).includes('paid');
        if (!done()) await client.waitForEvents(2);
        // One more change, so a late duplicate of "paid" would show up before it.
        await call(a, 'POST', `/orders/${order.id}/status`, { status: 'shipped' });
        await client.waitForEvents(statusesOf(client).length + 1);
        const statuses = statusesOf(client);
        assert.equal(statuses.filter((status) => status === 'paid').length, 1, `round ${round}: ${statuses}`);
        assert.equal(statuses.at(-1), 'shipped');
        client.abort();
      }
    });

    it('guards watching: one order needs its token (or publisher access, as for reading it), all orders need publisher access', async () => {
      const { order, token } = await createOrder(a);
      const other = await createOrder(a);
      const status = async (path: string) => (await fetch(new URL(path, a.url))).status;
      // A publisher (here: loopback, no key) may watch one order without its token, as it may read it.
      const watching = new AbortController();
      const publisherWatch = await fetch(new URL(`/order_monitor?order=${order.id}`, b.url), { signal: watching.signal });
      assert.equal(publisherWatch.status, 200);
      watching.abort();
      assert.equal(await status(`/order_monitor?order=${order.id}&token=${other.token}`), 403);
      assert.equal(await status(`/order_monitor?order=${order.id}&token=${token}x`), 403);
      assert.equal(await status(`/orders/${order.id}?token=${other.token}`), 403);
      assert.equal(await status('/order_monitor?order=ord_unknown&token=abc'), 403);
      const outsider = await backend.another(a, { clientAddress: () => '198.51.100.7' });
      assert.equal((await fetch(new URL('/order_monitor', outsider.url))).status, 403);
      assert.equal((await fetch(new URL(`/order_monitor?order=${order.id}`, outsider.url))).status, 403);
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
    });

    it('streams every order to a publisher: a snapshot of each, then updates', async () => {
      const [own, peer] = await backend.nodes();
      const first = await createOrder(own, { item: 'A' });
      const second = await createOrder(peer, { item: 'B' });
      const client = new StreamClient(new URL('/order_monitor', own.url));
      await client.waitForEvents(2);
      await call(peer, 'POST', `/orders/${second.order.id}/status`, { status: 'paid' });
      await client.waitForEvents(3);
      // In the order they were created, whichever node took them.
      assert.deepEqual(
        client.events.map((event) => [JSON.parse(event.data).item, JSON.parse(event.data).status]),
        [['A', 'created'], ['B', 'created'], ['B', 'paid']],
      );
      assert.ok(first.order.id);
      client.abort();
    });

    it('keeps orders and their tokens across a restart', async () => {
      const [first] = await backend.nodes();
      const { order, token } = await createOrder(first);
      await call(first, 'POST', `/orders/${order.id}/status`, { status: 'paid' });
      await first.app.shutdown();
      const second = await backend.another(first);
      const response = await fetch(new URL(`/orders/${order.id}?token=${token}`, second.url));
      assert.equal(response.status, 200);
      assert.equal((await jsonBody(response)).status, 'paid');
    });

    it('moves demo orders along while someone watches', async () => {
      const [own] = await backend.nodes({ courierMs: 10 });
      const { watch } = await createOrder(own, { item: 'Demo', demo: true });
      const client = new StreamClient(new URL(watch, own.url));
      await client.waitForEvents(6, 10_000);
      assert.deepEqual(statusesOf(client), ['created', 'paid', 'shipped', 'in_transit', 'out_for_delivery', 'delivered']);
      client.abort();
    });
  });
}
