/**
 * `npx tsx bench/orders-store.ts [--samples N] [--rounds N] [--dir DIR]`: what one change costs
 * the file order store with 10 orders stored and with 10,000. Prints the median time of one
 * create and of one status change, each awaited until its log line is on disk (fdatasync
 * included), and the ratio between the two sizes; the goal is that a change costs about the
 * same however many orders there are (within 2×). Also the time of one compaction, which does
 * grow with the orders and is paid once per at least as many changes.
 *
 * The 10,000 store runs full (MAX_ORDERS' default is 10,000, all of them delivered), so every
 * create also makes room. Stores are seeded by writing `orders.json` directly, as compaction
 * would. The two sizes take turns, round after round, so a disk's slow moments fall on both.
 * Run it on the disk the data will live on: on tmpfs, fsync costs nothing.
 */
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newOrder, withStatus, type Order } from '../lib/demos/orders/model.ts';
import { OrderLog } from '../lib/demos/orders/order-log.ts';
import { OrderStore } from '../lib/demos/orders/store.ts';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const samples = Number(option('--samples') ?? 200);
const rounds = Number(option('--rounds') ?? 5);
const baseDir = option('--dir') ?? tmpdir();
const WARM_UP = 20;
const TMPFS_MAGIC = 0x01021994;

/** Every timing of one store size, in ms. */
interface Timings {
  create: number[];
  status: number[];
  compaction: number[];
}

/** A delivered order, as the courier leaves them. */
function deliveredOrder(index: number): Order {
  let order = newOrder({ item: `Parcel ${index}`, demo: true });
  for (const status of ['paid', 'shipped', 'in_transit', 'out_for_delivery', 'delivered'] as const) order = withStatus(order, status);
  return order;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await action();
  return performance.now() - start;
}

/** One round: seeds a store with `stored` orders, times `samples` creates, then as many status changes. */
async function measure(stored: number, into: Timings): Promise<void> {
  const dir = mkdtempSync(join(baseDir, 'orders-bench-'));
  try {
    writeFileSync(join(dir, 'orders.json'), JSON.stringify({ orders: Array.from({ length: stored }, (_, index) => deliveredOrder(index)) }));
    const store = new OrderStore(dir, { maxOrders: 10_000, hub: { publish: async () => ({ id: 0 }) }, logger: () => {} });
    const created: Order[] = [];
    for (let index = 0; index < WARM_UP + samples; index++) {
      const took = await timed(async () => created.push(await store.create({ item: 'Teapot', demo: false })));
      if (index >= WARM_UP) into.create.push(took);
    }
    for (const [index, order] of created.entries()) {
      const took = await timed(() => store.setStatus(order.id, 'paid'));
      if (index >= WARM_UP) into.status.push(took);
    }
    await store.close();
    // Fewer changes than orders (or than 1,000) were made, so no compaction ran above; time one.
    const log = new OrderLog(dir, () => {});
    const orders = log.load();
    into.compaction.push(await timed(() => log.compact(orders.values())));
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (statfsSync(baseDir).type === TMPFS_MAGIC) console.warn(`${baseDir} is a tmpfs: fsync costs nothing there, so the figures flatter.`);
const small: Timings = { create: [], status: [], compaction: [] };
const large: Timings = { create: [], status: [], compaction: [] };
await measure(10, { create: [], status: [], compaction: [] }); // warms up the JIT and the disk
for (let round = 0; round < rounds; round++) {
  await measure(10, small);
  await measure(10_000, large);
}
const ms = (values: number[]) => `${median(values).toFixed(3)} ms`;
const ratio = (key: 'create' | 'status') => `${(median(large[key]) / median(small[key])).toFixed(2)}×`;
console.log(`File order store in ${baseDir}: medians of ${rounds} × ${samples} changes, fdatasync included\n`);
console.log('| orders stored | create | status change | one compaction |');
console.log('| ---: | ---: | ---: | ---: |');
console.log(`| 10 | ${ms(small.create)} | ${ms(small.status)} | ${ms(small.compaction)} |`);
console.log(`| 10,000 | ${ms(large.create)} | ${ms(large.status)} | ${ms(large.compaction)} |`);
console.log(`| 10,000 ÷ 10 | ${ratio('create')} | ${ratio('status')} | |`);
