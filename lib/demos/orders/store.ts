/**
 * Where orders are kept, and the rule both stores keep: **write first, publish after.** A
 * change is saved before anyone hears of it, so no event ever describes a state that a crash
 * could take back. `OrderStore` here keeps orders in a file, for one process; `RedisOrderStore`
 * (lib/scale/redis-orders.ts) keeps them in Redis, shared by every process.
 *
 * No torn files: the store is written to a temporary file, flushed to disk, and renamed over
 * the old one (lib/hub/durable-file.ts), so after a crash the file is either the old version or
 * the new one, never half of each, never empty.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../../http/json.ts';
import type { Logger } from '../../http/log.ts';
import { writeFileAtomically } from '../../hub/durable-file.ts';
import type { PubSub } from '../../hub/pubsub.ts';
import { orderEvent } from './events.ts';
import { isFinished, newOrder, withStatus, type Order, type OrderStatus } from './model.ts';

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

export class OrderStore implements Orders {
  readonly #file: string;
  readonly #options: OrderStoreOptions;
  #orders: Map<string, Order>;
  /** Changes run one at a time, so two updates never race to write the file. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Opens (or creates) the store in `dir`, reading what an earlier run saved. */
  constructor(dir: string, options: OrderStoreOptions) {
    mkdirSync(dir, { recursive: true });
    this.#file = join(dir, 'orders.json');
    this.#options = options;
    this.#orders = new Map(OrderStore.#load(this.#file).map((order) => [order.id, order]));
  }

  static #load(file: string): Order[] {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const parsed = JSON.parse(text) as { orders?: unknown };
    if (!Array.isArray(parsed.orders)) throw new Error(`Cannot load orders: ${file} has no "orders" array`);
    return parsed.orders as Order[];
  }

  /** Resolves once every change accepted so far is saved (for shutdown). */
  async idle(): Promise<void> {
    await this.#queue;
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
    return this.#change(() => {
      const orders = new Map(this.#orders);
      if (orders.size >= this.#options.maxOrders) {
        const finished = [...orders.values()].find(isFinished);
        if (!finished) throw storeFull();
        orders.delete(finished.id);
      }
      const order = newOrder(input);
      orders.set(order.id, order);
      return { orders, order };
    });
  }

  setStatus(id: string, status: OrderStatus): Promise<Order> {
    return this.#change(() => {
      const current = this.#orders.get(id);
      if (!current) throw new HttpError(404, `No order ${JSON.stringify(id)}`);
      const order = withStatus(current, status);
      const orders = new Map(this.#orders);
      orders.set(id, order);
      return { orders, order };
    });
  }

  /**
   * Runs one change: compute the new state, save it, and only then make it current and
   * announce it. If saving fails, the old state stays current and nobody hears of the change.
   */
  #change(compute: () => { orders: Map<string, Order>; order: Order }): Promise<Order> {
    const run = async () => {
      const { orders, order } = compute();
      await this.#save(orders);
      this.#orders = orders;
      // Synchronously with the line above (the memory hub stores the event before its first
      // await), so the orders and the hub's ids never disagree, even for an instant.
      this.#options.hub.publish(orderEvent(order)).catch((error: unknown) => {
        this.#options.logger('orders.publish_failed', { order: order.id, error: String((error as Error)?.message ?? error) });
      });
      return order;
    };
    const result = this.#queue.then(run, run);
    // The queue only orders the changes; each caller handles its own change's failure.
    this.#queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  async #save(orders: Map<string, Order>): Promise<void> {
    await writeFileAtomically(this.#file, JSON.stringify({ orders: [...orders.values()] }));
  }
}
