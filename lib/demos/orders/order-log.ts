/**
 * How the file order store saves: each change appended to a log, the log now and then folded
 * into a snapshot. Files in the data directory:
 *
 * - `orders.log`: one JSON line per change, `{"order": {...}}` (the order's whole new state),
 *   with `"evicted": id` when a finished order made room for it. A line is flushed to disk
 *   (fdatasync) before the change counts, so a change costs one small write, however many
 *   orders there are.
 * - `orders.json`: every order as of the last compaction, written atomically
 *   (lib/hub/durable-file.ts). Compaction rewrites it and empties the log; the store runs it
 *   once the log has more lines than there are orders (and at least 1000), so its cost, which
 *   grows with the orders, is spread over at least as many changes: a constant amount each.
 *
 * Starting means reading `orders.json`, then replaying the log over it. A line holds a whole
 * state, never a difference, so replaying it twice changes nothing: a crash between writing
 * `orders.json` and emptying the log is harmless. A crash in the middle of an append leaves a
 * last line without its newline; that change was never acknowledged (acknowledgement waits for
 * the flush), so it is dropped, and cut off before the next append. Anything else that does not
 * read back is damage: loading stops with an error naming the file, since guessing would lose
 * orders without a word.
 *
 * Why not rewrite `orders.json` on every change, as this store once did: then a change costs
 * as much as all the orders. `npx tsx bench/orders-store.ts` (ext4, 2-core VM): with 10,000
 * orders stored, a create or a status change took about 25 ms that way, 40× what it took with
 * 10; with the log both take about 0.2 ms with 10 orders or 10,000 (10,000 ÷ 10: 0.8–1.2×).
 * One compaction of 10,000 orders takes 40–60 ms, once per 10,000 changes or more.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../http/log.ts';
import { readIfPresent, syncDirectory, writeFileAtomically } from '../../hub/durable-file.ts';
import { isOrder, type Order } from './model.ts';

/** One saved change: an order's new state, and the finished order it pushed out, if any. */
export interface OrderChange {
  order: Order;
  evicted?: string | undefined;
}

export class OrderLog {
  readonly snapshotFile: string;
  readonly logFile: string;
  readonly #logger: Logger;
  /** Opened at the first append, so a read-only directory fails a write, not the start. */
  #handle: FileHandle | undefined;
  /** Bytes of whole, saved lines: where the next line must go. */
  #size = 0;
  /** The file may hold bytes past `#size` (a torn line, a failed append): cut before appending. */
  #untidy = false;
  #lines = 0;

  constructor(dir: string, logger: Logger) {
    this.snapshotFile = join(dir, 'orders.json');
    this.logFile = join(dir, 'orders.log');
    this.#logger = logger;
  }

  /** Changes appended since the last compaction. */
  get lines(): number {
    return this.#lines;
  }

  /** The orders as saved: the snapshot, then the log replayed over it, in creation order. */
  load(): Map<string, Order> {
    const orders = new Map<string, Order>();
    for (const order of readSnapshot(this.snapshotFile)) orders.set(order.id, order);
    const bytes = readIfPresent(this.logFile) ?? Buffer.alloc(0);
    // Only whole lines count; see the top of the file for the torn last one.
    this.#size = bytes.lastIndexOf(0x0a) + 1;
    this.#untidy = bytes.length > this.#size;
    const lines = bytes.subarray(0, this.#size).toString('utf8').split('\n').slice(0, -1);
    for (const [index, line] of lines.entries()) {
      const change = parseChange(line);
      if (!change) throw damaged(this.logFile, `line ${index + 1} is not an order change`);
      if (change.evicted !== undefined) orders.delete(change.evicted);
      orders.set(change.order.id, change.order);
    }
    this.#lines = lines.length;
    return orders;
  }

  /** Appends one change and flushes it to disk; if that fails, the log is left as it was. */
  async append(change: OrderChange): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(change)}\n`);
    this.#handle ??= await this.#open();
    if (this.#untidy) await this.#tidy();
    try {
      await this.#handle.appendFile(line);
      // fdatasync, not fsync: the data and the file's new length, without its timestamps.
      await this.#handle.datasync();
    } catch (error) {
      // A full disk can take half a line. A later line must not follow it: cut it off now, or,
      // if even that fails, before the next append.
      this.#untidy = true;
      await this.#tidy().catch((tidyError: unknown) => {
        this.#logger('orders.log_untidy', { file: this.logFile, error: String(tidyError) });
      });
      throw error;
    }
    this.#size += line.length;
    this.#lines += 1;
  }

  /**
   * Opens the log for appending. Flushing a new file's lines does not make its name durable:
   * the directory is flushed too, or a power cut could take the whole log with it.
   */
  async #open(): Promise<FileHandle> {
    const handle = await open(this.logFile, 'a');
    await syncDirectory(dirname(this.logFile));
    return handle;
  }

  /** Writes every order to the snapshot, then empties the log it now holds. */
  async compact(orders: Iterable<Order>): Promise<void> {
    await writeFileAtomically(this.snapshotFile, JSON.stringify({ orders: [...orders] }));
    // No flush needed: if the emptying is lost in a crash, the old lines are replayed over a
    // snapshot that already holds them, which changes nothing.
    this.#handle ??= await this.#open();
    await this.#handle.truncate(0);
    this.#size = 0;
    this.#untidy = false;
    this.#lines = 0;
  }

  /** Closes the log file (at shutdown); a later append would open it again. */
  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  /** Cuts the log back to its whole, saved lines. */
  async #tidy(): Promise<void> {
    await this.#handle!.truncate(this.#size);
    this.#untidy = false;
  }
}

function readSnapshot(file: string): Order[] {
  const bytes = readIfPresent(file);
  if (bytes === undefined) return [];
  let parsed: { orders?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as { orders?: unknown };
  } catch {
    throw damaged(file, 'it is not valid JSON');
  }
  if (!Array.isArray(parsed?.orders) || !parsed.orders.every(isOrder)) throw damaged(file, 'it has no valid "orders" array');
  return parsed.orders;
}

function parseChange(line: string): OrderChange | undefined {
  let change: Partial<OrderChange>;
  try {
    change = JSON.parse(line) as Partial<OrderChange>;
  } catch {
    return undefined;
  }
  const evictedOk = change?.evicted === undefined || typeof change.evicted === 'string';
  return isOrder(change?.order) && evictedOk ? (change as OrderChange) : undefined;
}

function damaged(file: string, what: string): Error {
  return new Error(`Cannot load orders: ${file} is damaged (${what}); repair it or move it aside`);
}
