import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { OrderStore } from '../../lib/demos/orders/store.ts';
import { jsonBody, post, startApp, type Running } from '../support/harness.ts';
import { cannotMount, mountSmallDisk, unmountSmallDisks, type SmallDisk } from '../support/tmpfs.ts';

async function health(running: Running): Promise<Record<string, any>> {
  const response = await fetch(new URL('/healthz', running.url));
  assert.equal(response.status, 200);
  return jsonBody(response);
}

/** Starts the app with its data directory on `disk`. */
const startOn = (disk: SmallDisk) => startApp({ dataDir: disk.dir, orderSecret: 'disk-faults' });

describe('a full or read-only data directory', { skip: cannotMount }, () => {
  after(unmountSmallDisks);

  it('starts on a read-only disk that holds saved history, leaving the history unused and saying why', async () => {
    const disk = mountSmallDisk();
    const first = await startOn(disk);
    await first.app.shutdown(); // saves history.json for the next run
    assert.ok(readdirSync(disk.dir).includes('history.json'));
    disk.readOnly(true);
    const logged: string[] = [];
    const second = await startApp({ dataDir: disk.dir, orderSecret: 'disk-faults', logger: (event) => logged.push(event) });
    try {
      assert.ok(logged.includes('history.discard_failed'), logged.join(', '));
      assert.equal((await fetch(new URL('/healthz', second.url))).status, 200);
    } finally {
      await second.close();
      disk.readOnly(false);
    }
  });

  it('answers 503 with Retry-After while the disk is full, says degraded on /healthz, and recovers once there is room', async () => {
    const disk = mountSmallDisk();
    const running = await startOn(disk);
    const giveBack = disk.fill();
    const refused = await post(new URL('/orders', running.url), { item: 'Teapot' });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '30');
    assert.deepEqual(await jsonBody(refused), { error: "Cannot create an order: the server's disk is full; try again later" });
    assert.deepEqual(await health(running), { status: 'degraded', unavailable: ['orders'], streams: 0 });

    giveBack();
    assert.equal((await post(new URL('/orders', running.url), { item: 'Teapot' })).status, 201);
    assert.deepEqual(await health(running), { status: 'ok', streams: 0 });
    await running.app.shutdown();
  });

  it('answers 503 while the data directory is read-only, and recovers once it is writable', async () => {
    const disk = mountSmallDisk();
    const running = await startOn(disk);
    disk.readOnly(true);
    const refused = await post(new URL('/orders', running.url), { item: 'Teapot' });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'));
    assert.match((await jsonBody(refused)).error, /^Cannot create an order: the server's data directory is not writable/);
    assert.equal((await health(running)).status, 'degraded');

    disk.readOnly(false);
    assert.equal((await post(new URL('/orders', running.url), { item: 'Teapot' })).status, 201);
    assert.equal((await health(running)).status, 'ok');
    await running.app.shutdown();
  });

  it('cuts the log back after an append the disk refused half way, so the next line does not follow a torn one', async () => {
    const disk = mountSmallDisk();
    const running = await startOn(disk);
    const logFile = join(disk.dir, 'orders.log');
    const create = async () => (await jsonBody(await post(new URL('/orders', running.url), { item: 'x' }))).order as { id: string };
    const order = await create();
    // Orders until the log's last page has room for part of a line, not all of it: a status
    // change (longer than a create) then fills that room and fails for want of another page.
    const lineLength = statSync(logFile).size;
    const room = () => 4096 - (statSync(logFile).size % 4096);
    while (room() >= lineLength) await create();
    const saved = statSync(logFile).size;

    const giveBack = disk.fill();
    const refused = await post(new URL(`/orders/${order.id}/status`, running.url), { status: 'paid' });
    assert.equal(refused.status, 503);
    assert.match((await jsonBody(refused)).error, new RegExp(`^Cannot update order ${order.id}: the server's disk is full`));
    assert.equal(statSync(logFile).size, saved, 'the half-written line is still in the log');
    const unchanged = await fetch(new URL(`/orders/${order.id}`, running.url));
    assert.equal((await jsonBody(unchanged)).status, 'created');

    giveBack();
    assert.equal((await post(new URL(`/orders/${order.id}/status`, running.url), { status: 'paid' })).status, 200);
    await running.app.shutdown();
    // The next run reads every line back (a line after a torn one would be damage).
    const reopened = new OrderStore(disk.dir, { maxOrders: 100, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
    assert.equal((await reopened.get(order.id))?.status, 'paid');
    await reopened.close();
  });

  for (const fault of ['full', 'read-only'] as const) {
    it(`shuts down cleanly when the disk is ${fault}: logs that history was not saved, exits 0, leaves no temporary file`, async () => {
      const disk = mountSmallDisk();
      const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../server.ts', import.meta.url).pathname], {
        env: { ...process.env, PORT: '0', DATA_DIR: disk.dir, ORDER_SECRET: 'disk-faults', TICK_MS: '0', MONITOR_INTERVAL_MS: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      const listening = new Promise<URL>((resolve) => {
        child.stderr!.on('data', (chunk: Buffer) => {
          log += chunk;
          const match = /"event":"server.listening","url":"([^"]+)"/.exec(log);
          if (match) resolve(new URL(match[1]!));
        });
      });
      const exited = once(child, 'exit', { signal: AbortSignal.timeout(20_000) });
      const url = await Promise.race([listening, exited.then(() => assert.fail(`the server did not start:\n${log}`))]);
      assert.equal((await post(new URL('/publish', url), { channel: 'kept', data: 'history to save' })).status, 202);
      if (fault === 'full') disk.fill();
      else disk.readOnly(true);

      child.kill('SIGTERM');
      const [code] = (await exited) as [number];
      assert.equal(code, 0, log);
      assert.match(log, new RegExp(`"event":"history.save_failed","file":"${join(disk.dir, 'history.json')}"`));
      assert.match(log, fault === 'full' ? /ENOSPC/ : /EROFS/);
      assert.match(log, /"event":"server.stopped"/);
      assert.deepEqual(readdirSync(disk.dir).filter((name) => name.endsWith('.tmp')), []);
    });
  }
});
