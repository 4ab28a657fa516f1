/**
 * The in-process order store's file (lib/demos/orders/store.ts): what only this backend has to
 * promise. What every backend promises about orders is in tests/contract/orders-contract.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OrderStore } from '../../lib/demos/orders/store.ts';

describe('the order store on disk', () => {
  it('survives being killed mid-write: the file is whole, and every acknowledged order is in it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orders-crash-'));
    // A separate process creating orders as fast as it can, printing each id once it is saved.
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
         for (;;) process.stdout.write((await store.create({ item: 'x'.repeat(200), demo: false })).id + '\\n');`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let acknowledged: string[] = [];
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the writer never saved 200 orders')), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
        acknowledged = output.split('\n').slice(0, -1);
        if (acknowledged.length >= 200 && !child.killed) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.once('exit', resolve));
    const text = readFileSync(join(dir, 'orders.json'), 'utf8');
    assert.doesNotThrow(() => JSON.parse(text), 'orders.json is torn');
    const store = new OrderStore(dir, { maxOrders: 1e6, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
    const saved = new Set((await store.list()).map((order) => order.id));
    for (const id of acknowledged) assert.ok(saved.has(id), `acknowledged order ${id} was lost`);
    assert.ok(readdirSync(dir).every((name) => name === 'orders.json' || name.endsWith('.tmp')));
  });
});
