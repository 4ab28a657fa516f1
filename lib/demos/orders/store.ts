/**
 * Orders and their shipping progress: a small state machine and a store that survives restarts.
 *
 * Two rules make the live view trustworthy:
 * - **Write first, publish after.** A change is saved to disk before anyone hears of it, so no
 *   event ever describes a state that a crash could take back.
 * - **No torn files.** The store is written to a temporary file, flushed to disk, and renamed
 *   over the old one. A rename within one directory is atomic: after a crash the file is either
 *   the old version or the new one, never half of each, never empty.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomically } from '../../hub/durable-file.ts';
import type { Awaitable } from '../../hub/memory-hub.ts';
import { HttpError } from '../../http/json.ts';

/** The happy path, in order; `cancelled` branches off before shipping. */
export const SHIPPING_STEPS = ['created', 'paid', 'shipped', 'in_transit', 'out_for_delivery', 'delivered'] as const;
export const ORDER_STATUSES = [...SHIPPING_STEPS, 'cancelled'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Which statuses may follow which. Anything else is a 409. */
const NEXT: Record<OrderStatus, readonly OrderStatus[]> = {
  created: ['paid', 'cancelled'],
  paid: ['shipped', 'cancelled'],
  shipped: ['in_transit'],
  in_transit: ['out_for_delivery'],
  out_for_delivery: ['delivered'],
  delivered: [],
  cancelled: [],
};

export function isOrderStatus(value: unknown): value is OrderStatus {
  return typeof value === 'string' && (ORDER_STATUSES as readonly string[]).includes(value);
}

/** The next step on the happy path, or undefined once the order is finished. */
export function nextShippingStep(status: OrderStatus): OrderStatus | undefined {
  const index = (SHIPPING_STEPS as readonly string[]).indexOf(status);
  return index === -1 ? undefined : SHIPPING_STEPS[index + 1];
}

export interface Order {
  id: string;
  item: string;
  /** Demo orders are moved along by the demo courier. */
  demo: boolean;
  status: OrderStatus;
  createdAt: string;
  updatedAt: string;
  history: Array<{ status: OrderStatus; at: string }>;
}

/** Orders as they stand, and the id of the newest event they reflect. */
export interface OrdersSnapshot {
  orders: Order[];
  upTo: number;
}

/**
 * What the routes and the courier need from an order store. Two implement it: `OrderStore`
 * here (one process, a file), and `RedisOrderStore` (lib/redis-orders.ts, shared by processes).
 */
export interface Orders {
  get(id: string): Awaitable<Order | undefined>;
  list(): Awaitable<Order[]>;
  create(input: { item: string; demo: boolean }): Promise<Order>;
  /** Moves an order on: 404 for an unknown order, 409 for a move its status does not allow. */
  setStatus(id: string, status: OrderStatus): Promise<Order>;
  /** Resolves once every change accepted so far is saved and published (for shutdown). */
  idle(): Promise<void>;
  /**
   * All orders (or the one), read together with the id of the newest order event they reflect,
   * so a watcher can take live updates from exactly there. `current` is the hub's newest
   * delivered id: a store whose changes are published synchronously on this hub is current
   * as of it.
   */
  snapshot(orderId: string | undefined, current: number): Awaitable<OrdersSnapshot>;
}

/** A new order in its first status. */
export function newOrder(input: { item: string; demo: boolean }): Order {
  const now = new Date().toISOString();
  return {
    // Random, not sequential: ids alone reveal nothing about how many orders exist.
    id: `ord_${randomBytes(9).toString('base64url')}`,
    item: input.item,
    demo: input.demo,
    status: 'created',
    createdAt: now,
    updatedAt: now,
    history: [{ status: 'created', at: now }],
  };
}

/** The order after moving to `status`; throws 409 if its current status does not allow that. */
export function withStatus(current: Order, status: OrderStatus): Order {
  if (!NEXT[current.status].includes(status)) {
    throw new HttpError(409, `Cannot move order ${current.id} from ${current.status} to ${status}`);
  }
  const now = new Date().toISOString();
  return { ...current, status, updatedAt: now, history: [...current.history, { status, at: now }] };
}

export interface OrderStoreOptions {
  /** Orders kept at most; finished orders (delivered, cancelled) make room first. */
  maxOrders: number;
  /** Called after each change is saved: the place to publish it. */
  onChange: (order: Order) => void;
}

export const isFinished = (order: Order) => order.status === 'delivered' || order.status === 'cancelled';

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

  get(id: string): Order | undefined {
    return this.#orders.get(id);
  }

  list(): Order[] {
    return [...this.#orders.values()];
  }

  /** Changes become current and are published in one synchronous step, so "now" is `current`. */
  snapshot(orderId: string | undefined, current: number): OrdersSnapshot {
    const order = orderId === undefined ? undefined : this.#orders.get(orderId);
    const orders = orderId === undefined ? this.list() : order ? [order] : [];
    return { orders, upTo: current };
  }

  create(input: { item: string; demo: boolean }): Promise<Order> {
    return this.#change(() => {
      const orders = new Map(this.#orders);
      if (orders.size >= this.#options.maxOrders) {
        const finished = [...orders.values()].find(isFinished);
        if (!finished) throw new HttpError(503, 'Cannot create an order: the store is full of open orders', { 'Retry-After': '60' });
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
      this.#options.onChange(order);
      return order;
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }

  async #save(orders: Map<string, Order>): Promise<void> {
    await writeFileAtomically(this.#file, JSON.stringify({ orders: [...orders.values()] }));
  }
}
