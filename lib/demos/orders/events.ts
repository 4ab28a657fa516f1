/**
 * How an order travels as events: one internal hub channel, one event type, the order's id as
 * the routing key (so a watcher of one order gets only its updates), and the snapshot a new
 * watcher gets first. Both order stores publish through `orderEvent`, so the two cannot differ.
 */
import type { PublishInput, Snapshot } from '../../hub/pubsub.ts';
import { formatEvent } from '../../sse/format.ts';
import type { Order } from './model.ts';
import type { OrdersSnapshot } from './store.ts';

/**
 * The hub channel for order updates. The colon makes it internal: public channel names cannot
 * contain one, so `/stream` can never subscribe to it and `/publish` can never forge an update.
 */
export const ORDERS_CHANNEL = 'orders:updates';

/** The event type a page listens for: `source.addEventListener('order_update', …)`. */
export const ORDER_UPDATE = 'order_update';

/** The event that announces an order's new state to its watchers and to watchers of all orders. */
export function orderEvent(order: Order): PublishInput & { event: string; key: string } {
  return { channel: ORDERS_CHANNEL, event: ORDER_UPDATE, data: JSON.stringify(order), key: order.id };
}

/** Every order in the snapshot as an `order_update` carrying the snapshot's id (or a lone id when none). */
export function snapshotFrames({ orders, upTo }: OrdersSnapshot): Snapshot {
  const id = String(upTo);
  if (orders.length === 0) return { upTo, frames: formatEvent({ id }) };
  return { upTo, frames: orders.map((order) => formatEvent({ event: ORDER_UPDATE, id, data: JSON.stringify(order) })).join('') };
}
