/**
 * An order and its shipping progress: a small state machine. Both order stores (the file in
 * ./store.ts, Redis in lib/scale/redis-orders.ts) apply these rules, so they cannot disagree.
 */
import { randomBytes } from 'node:crypto';
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

/** Delivered and cancelled orders are finished: they make room first when the store is full. */
export function isFinished(order: Order): boolean {
  return order.status === 'delivered' || order.status === 'cancelled';
}

/** True for a value shaped like an `Order`: what a line read back from disk must be. */
export function isOrder(value: unknown): value is Order {
  if (typeof value !== 'object' || value === null) return false;
  const order = value as Partial<Order>;
  return (
    typeof order.id === 'string' &&
    typeof order.item === 'string' &&
    typeof order.demo === 'boolean' &&
    isOrderStatus(order.status) &&
    typeof order.createdAt === 'string' &&
    typeof order.updatedAt === 'string' &&
    Array.isArray(order.history)
  );
}
