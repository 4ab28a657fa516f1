import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OrderStore } from '../../lib/demos/orders/store.ts';

function openStore(dir: string, maxOrders = 1e6): OrderStore {
  return new OrderStore(dir, { maxOrders, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
}

const freshDir = () => mkdtempSync(join(tmpdir(), 'order-log-'));
const logLines = (dir: string) => readFileSync(join(dir, 'orders.log'), 'utf8').split('\n').slice(0, -1);

describe('the order log', () => {
  it('saves a change by appending one line to orders.log, leaving orders.json alone', async () => {
    const dir = freshDir();
    const store = openStore(dir);
    const first = await store.create({ item: 'A', demo: false });
    await store.create({ item: 'B', demo: false });
    await store.setStatus(first.id, 'paid');
    assert.equal(existsSync(join(dir, 'orders.json')), false);
    const lines = logLines(dir).map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((line) => [line.order.item, line.order.status]), [['A', 'created'], ['B', 'created'], ['A', 'paid']]);
    await store.close();
    assert.deepEqual(await openStore(dir).list(), await store.list());
  });

  it('folds the log into orders.json once it has more lines than there are orders, losing nothing', async () => {
    const dir = freshDir();
    const store = openStore(dir);
    // 500 orders, each created and cancelled: the 1,000th line makes the log longer than it is
    // worth (1,000 lines at least, and more than the orders).
    const created = [];
    for (let index = 0; index < 500; index++) created.push(await store.create({ item: `#${index}`, demo: false }));
    for (const order of created) await store.setStatus(order.id, 'cancelled');
    await store.idle();
    const snapshot = JSON.parse(readFileSync(join(dir, 'orders.json'), 'utf8')) as { orders: Array<{ status: string }> };
    assert.equal(snapshot.orders.length, 500);
    assert.ok(snapshot.orders.every((order) => order.status === 'cancelled'));
    assert.equal(statSync(join(dir, 'orders.log')).size, 0);
    await store.create({ item: 'after', demo: false });
    assert.equal(logLines(dir).length, 1);
    await store.close();
    assert.deepEqual(await openStore(dir).list(), await store.list());
  });

  it('replays a log that orders.json already holds (a crash mid-compaction) without changing anything', async () => {
    const dir = freshDir();
    const store = openStore(dir, 3);
    const [a, b] = [await store.create({ item: 'A', demo: false }), await store.create({ item: 'B', demo: false })];
    await store.create({ item: 'C', demo: false });
    await store.setStatus(a.id, 'cancelled');
    await store.setStatus(b.id, 'paid');
    await store.create({ item: 'D', demo: false }); // full: A, finished, makes room
    await store.close();
    const expected = await store.list();
    assert.deepEqual(expected.map((order) => order.item), ['B', 'C', 'D']);
    // Compaction wrote orders.json and was killed before it emptied the log.
    writeFileSync(join(dir, 'orders.json'), JSON.stringify({ orders: expected }));
    assert.equal(logLines(dir).length, 6);
    assert.deepEqual(await openStore(dir, 3).list(), expected);
  });

  it('drops a torn last line left by a crash, and appends after the last whole line', async () => {
    const dir = freshDir();
    const store = openStore(dir);
    await store.create({ item: 'A', demo: false });
    await store.close();
    // A crash in the middle of an append: the line never got its newline, nor an acknowledgement.
    appendFileSync(join(dir, 'orders.log'), '{"order":{"id":"ord_torn","item":"T');
    const reopened = openStore(dir);
    assert.deepEqual((await reopened.list()).map((order) => order.item), ['A']);
    await reopened.create({ item: 'B', demo: false });
    await reopened.close();
    assert.deepEqual(logLines(dir).map((line) => JSON.parse(line).order.item), ['A', 'B']);
    assert.deepEqual((await openStore(dir).list()).map((order) => order.item), ['A', 'B']);
  });

  it('makes room with the order that finished first, also after a restart', async () => {
    const dir = freshDir();
    const store = openStore(dir, 3);
    const [a, b] = [await store.create({ item: 'A', demo: false }), await store.create({ item: 'B', demo: false })];
    await store.create({ item: 'C', demo: false });
    await store.setStatus(b.id, 'cancelled');
    await store.setStatus(a.id, 'cancelled');
    await store.create({ item: 'D', demo: false });
    assert.deepEqual((await store.list()).map((order) => order.item), ['A', 'C', 'D']);
    await store.close();
    const reopened = openStore(dir, 3);
    await reopened.create({ item: 'E', demo: false });
    assert.deepEqual((await reopened.list()).map((order) => order.item), ['C', 'D', 'E']);
    await assert.rejects(reopened.create({ item: 'F', demo: false }), { status: 503 });
    await reopened.close();
  });

  it('stops the server at start when orders.json or orders.log is damaged, naming the file', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['orders.json', '{"orders": [', /orders\.json is damaged \(it is not valid JSON\)/],
      ['orders.log', 'not a change\n{"order":{}}\n', /orders\.log is damaged \(line 1 is not an order change\)/],
    ];
    for (const [name, text, message] of cases) {
      const dir = freshDir();
      writeFileSync(join(dir, name), text);
      const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../server.ts', import.meta.url).pathname], {
        env: { ...process.env, PORT: '0', DATA_DIR: dir, ORDER_SECRET: 'test' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      child.stderr!.on('data', (chunk: Buffer) => (log += chunk));
      const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(20_000) })) as [number];
      assert.equal(code, 1, log);
      assert.match(log, /"event":"server.failed"/);
      assert.ok(log.includes(join(dir, name)), log);
      assert.match(log, message);
    }
  });
});
