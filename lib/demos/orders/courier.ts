/**
 * The demo courier: while anyone watches orders, it moves every demo order one step along the
 * shipping path each tick, through the same store (and so the same save-then-publish path) as
 * the logistics API. With several processes, only the one holding the courier's lease moves
 * orders (see lib/demo-timer.ts), so no order is moved twice in one tick.
 */
import { runWhileListening } from '../demo-timer.ts';
import type { PubSub } from '../../hub/memory-hub.ts';
import { ORDERS_CHANNEL } from './routes.ts';
import { nextShippingStep, type Orders } from './store.ts';

export function startCourier(hub: PubSub, orders: Orders, courierMs: number): () => void {
  let busy = false;
  return runWhileListening(hub, { name: 'courier', channel: ORDERS_CHANNEL, intervalMs: courierMs }, () => {
    // A slow disk (or Redis) must not pile ticks on top of each other.
    if (busy) return;
    busy = true;
    const moveAll = async () => {
      const moves = (await orders.list()).flatMap((order) => {
        const next = order.demo ? nextShippingStep(order.status) : undefined;
        // Another writer may have moved the order since we looked: a 409 then is harmless.
        return next ? [orders.setStatus(order.id, next).catch(() => {})] : [];
      });
      await Promise.all(moves);
    };
    // Fire and forget: a tick that fails (Redis down) is simply retried by the next one.
    moveAll()
      .catch(() => {})
      .finally(() => {
        busy = false;
      });
  });
}
