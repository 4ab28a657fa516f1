/**
 * The in-process order store's file (lib/demos/orders/store.ts): what only this backend has to
 * promise. What every backend promises about orders is in tests/contract/orders-contract.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OrderStore } from '../../lib/demos/orders/store.ts';

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
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('the writer never saved 1,200 orders'));
      }, 30_000);
      // A writer that dies on its own failed: say so now, not after the time limit.
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (!child.killed) reject(new Error(`the writer exited on its own (code ${code})`));
      });
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
    await exited;
    // Loading refuses a damaged orders.json or orders.log, so loading at all shows both are whole.
    const store = new OrderStore(dir, { maxOrders: 1e6, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
    const saved = new Map((await store.list()).map((order) => [order.id, order.status]));
    for (const id of acknowledged) assert.equal(saved.get(id), 'paid', `acknowledged order ${id} was lost`);
    const files = readdirSync(dir);
    assert.ok(files.includes('orders.json'), 'the log was never compacted');
    assert.ok(files.every((name) => name === 'orders.json' || name === 'orders.log' || name.endsWith('.tmp')), String(files));
  });
});
