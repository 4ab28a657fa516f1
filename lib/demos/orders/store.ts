/**
 * Where orders are kept, and the rule both stores keep: **write first, publish after.** A
 * change is saved before anyone hears of it, so no event ever describes a state that a crash
 * could take back. `OrderStore` here keeps orders in files, for one process; `RedisOrderStore`
 * (lib/scale/redis-orders.ts) keeps them in Redis, shared by every process.
 *
 * On disk a change is one line appended to a log, and the log is folded into `orders.json`
 * now and then (./order-log.ts), so a change costs the same with ten orders or ten thousand.
 * Nothing else a change does scans the orders either: making room takes the oldest finished
 * order from a set kept for that.
 *
 * When the disk refuses a change (full, read-only), the change is not made, the client gets
 * 503 with Retry-After, and the store reports itself unavailable (`/healthz` says degraded)
 * until a change is saved again.
 */
import { mkdirSync } from 'node:fs';
import { HttpError } from '../../http/json.ts';
import type { Logger } from '../../http/log.ts';
import type { PubSub } from '../../hub/pubsub.ts';
import { orderEvent } from './events.ts';
import { isFinished, newOrder, withStatus, type Order, type OrderStatus } from './model.ts';
import { OrderLog, type OrderChange } from './order-log.ts';

/** Orders as they stand, and the id of the newest event they reflect. */
export interface OrdersSnapshot {
  orders: Order[];
  upTo: number;
}

/** What the routes and the courier need from an order store. */
export interface Orders {
  get(id: string): Promise<Order | undefined>;
  list(): Promise<Order[]>;
  create(input: { item: string; demo: boolean }): Promise<Order>;
  /** Moves an order on: 404 for an unknown order, 409 for a move its status does not allow. */
  setStatus(id: string, status: OrderStatus): Promise<Order>;
  /** Resolves once every change accepted so far is saved and published (for shutdown). */
  idle(): Promise<void>;
  /** False while changes cannot be saved (a full or read-only disk, Redis out of reach). */
  readonly available: boolean;
  /**
   * All orders (or the one), read together with the id of the newest order event they reflect,
   * so a watcher can take live updates from exactly there. `current` is the hub's newest id
   * at the moment of the call: a store that publishes in the same synchronous step as it
   * changes is current as of it; a shared store reads its own id with the orders.
   */
  snapshot(orderId: string | undefined, current: number): Promise<OrdersSnapshot>;
}

/** The 503 of a store full of open orders: finished ones make room, open ones never do. */
export function storeFull(): HttpError {
  return new HttpError(503, 'Cannot create an order: the store is full of open orders', { 'Retry-After': '60' });
}

export interface OrderStoreOptions {
  /** Orders kept at most; finished orders (delivered, cancelled) make room first. */
  maxOrders: number;
  /** Where each saved change is announced (only `publish` is used). */
  hub: Pick<PubSub, 'publish'>;
  logger: Logger;
}

/** Changes the log holds before compaction is worth it, however few the orders. */
const COMPACT_AFTER_LINES = 1000;

export class OrderStore implements Orders {
  readonly #log: OrderLog;
  readonly #options: OrderStoreOptions;
  readonly #orders: Map<string, Order>;
  /** Finished orders' ids, oldest first (a Set iterates in insertion order): the first to make room. */
  readonly #finished = new Set<string>();
  /** Changes (and compactions) run one at a time, so two never race to write the log. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Log lines at which to compact; pushed back after a failure, so a full disk is not retried on every change. */
  #compactAt = COMPACT_AFTER_LINES;
  #available = true;

  /** Opens (or creates) the store in `dir`, reading what earlier runs saved. */
  constructor(dir: string, options: OrderStoreOptions) {
    mkdirSync(dir, { recursive: true });
    this.#options = options;
    this.#log = new OrderLog(dir, options.logger);
    this.#orders = this.#log.load();
    // Oldest first, as they finished: a finished order changes no more, so its last update is when.
    const finished = [...this.#orders.values()].filter(isFinished);
    // ISO times in UTC sort as plain strings; localeCompare would ask the locale, for nothing.
    finished.sort((a, b) => (a.updatedAt < b.updatedAt ? -1 : a.updatedAt > b.updatedAt ? 1 : 0));
    for (const order of finished) this.#finished.add(order.id);
  }

  get available(): boolean {
    return this.#available;
  }

  /** Resolves once every change accepted so far is saved (for shutdown). */
  async idle(): Promise<void> {
    await this.#queue;
  }

  /** Waits for the changes under way, then closes the log file (at shutdown). */
  async close(): Promise<void> {
    await this.idle();
    await this.#log.close();
  }

  async get(id: string): Promise<Order | undefined> {
    return this.#orders.get(id);
  }

  async list(): Promise<Order[]> {
    return [...this.#orders.values()];
  }

  /**
   * Changes become current and are published in one synchronous step, and this reads before
   * its first await, so the orders read are exactly those as of `current`.
   */
  async snapshot(orderId: string | undefined, current: number): Promise<OrdersSnapshot> {
    const order = orderId === undefined ? undefined : this.#orders.get(orderId);
    const orders = orderId === undefined ? [...this.#orders.values()] : order ? [order] : [];
    return { orders, upTo: current };
  }

  create(input: { item: string; demo: boolean }): Promise<Order> {
    return this.#change('create an order', () => {
      let evicted: string | undefined;
      if (this.#orders.size >= this.#options.maxOrders) {
        evicted = this.#finished.values().next().value;
        if (evicted === undefined) throw storeFull();
      }
      return { order: newOrder(input), evicted };
    });
  }

  setStatus(id: string, status: OrderStatus): Promise<Order> {
    return this.#change(`update order ${id}`, () => {
      const current = this.#orders.get(id);
      if (!current) throw new HttpError(404, `No order ${JSON.stringify(id)}`);
      return { order: withStatus(current, status) };
    });
  }

  /**
   * Runs one change: compute it, save it, and only then make it current and announce it. If
   * saving fails, the orders stay as they were and nobody hears of the change.
   */
  #change(action: string, compute: () => OrderChange): Promise<Order> {
    const run = async () => {
      const change = compute();
      await this.#save(action, change);
      this.#apply(change);
      // Synchronously with the line above (the memory hub stores the event before its first
      // await), so the orders and the hub's ids never disagree, even for an instant.
      this.#options.hub.publish(orderEvent(change.order)).catch((error: unknown) => {
        this.#options.logger('orders.publish_failed', { order: change.order.id, error: String((error as Error)?.message ?? error) });
      });
      return change.order;
    };
    const result = this.#queue.then(run, run);
    // The queue only orders the changes; each caller handles its own change's failure. A
    // compaction, when due, runs after the change is answered and before the next one.
    this.#queue = result.then(
      () => this.#compactIfDue(),
      () => undefined,
    );
    return result;
  }

  async #save(action: string, change: OrderChange): Promise<void> {
    try {
      await this.#log.append(change);
    } catch (error) {
      if (this.#available) this.#options.logger('orders.unavailable', { file: this.#log.logFile, error: String(error) });
      this.#available = false;
      throw cannotSave(action, error);
    }
    if (!this.#available) this.#options.logger('orders.available', { file: this.#log.logFile });
    this.#available = true;
  }

  #apply({ order, evicted }: OrderChange): void {
    if (evicted !== undefined) {
      this.#orders.delete(evicted);
      this.#finished.delete(evicted);
    }
    this.#orders.set(order.id, order);
    if (isFinished(order)) this.#finished.add(order.id);
  }

  /** Folds the log into orders.json once it has more lines than there are orders, and at least 1000. */
  async #compactIfDue(): Promise<void> {
    const due = Math.max(this.#compactAt, this.#orders.size);
    if (this.#log.lines < due) return;
    try {
      await this.#log.compact(this.#orders.values());
      this.#compactAt = COMPACT_AFTER_LINES;
    } catch (error) {
      // The log still holds every change, so nothing is lost; try again once it has grown as much again.
      this.#compactAt = this.#log.lines + due;
      this.#options.logger('orders.compaction_failed', { file: this.#log.snapshotFile, error: String(error) });
    }
  }
}

/** The 503 of a change the disk refused. The cause is the operator's to fix; the client retries. */
function cannotSave(action: string, error: unknown): HttpError {
  const code = (error as NodeJS.ErrnoException)?.code;
  const reason =
    code === 'ENOSPC' || code === 'EDQUOT' ? "the server's disk is full"
    : code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? "the server's data directory is not writable"
    : "the server's disk failed";
  return new HttpError(503, `Cannot ${action}: ${reason}; try again later`, { 'Retry-After': '30' });
}
