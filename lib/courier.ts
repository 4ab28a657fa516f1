/**
 * The demo courier: while anyone watches orders, it moves every demo order one step along the
 * shipping path each tick, through the same store (and so the same save-then-publish path) as
 * the logistics API.
 */
import { runWhileListening } from './demo-timer.ts';
import type { Hub } from './hub.ts';
import { ORDERS_CHANNEL } from './order-monitor.ts';
import { nextShippingStep, type OrderStore } from './orders.ts';

export function startCourier(hub: Hub, orders: OrderStore, courierMs: number): () => void {
  let busy = false;
  return runWhileListening(hub, ORDERS_CHANNEL, courierMs, () => {
    // A slow disk must not pile ticks on top of each other.
    if (busy) return;
    busy = true;
    const moves = orders.list().flatMap((order) => {
      const next = order.demo ? nextShippingStep(order.status) : undefined;
      // Another writer may have moved the order since we looked: a 409 then is harmless.
      return next ? [orders.setStatus(order.id, next).catch(() => {})] : [];
    });
    void Promise.all(moves).finally(() => {
      busy = false;
    });
  });
}
