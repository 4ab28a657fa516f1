/**
 * The demo courier: while anyone watches orders, it moves every demo order one step along the
 * shipping path each tick, through the same store (and so the same save-then-publish path) as
 * the logistics API. With several processes, only the one holding the courier's lease moves
 * orders (see ../demo-timer.ts), so no order is moved twice in one tick.
 */
import { runWhileListening } from '../demo-timer.ts';
import type { Logger } from '../../http/log.ts';
import { HttpError } from '../../http/json.ts';
import type { PubSub } from '../../hub/pubsub.ts';
import { ORDERS_CHANNEL } from './events.ts';
import { nextShippingStep } from './model.ts';
import type { Orders } from './store.ts';

export function startCourier(hub: PubSub, orders: Orders, courierMs: number, logger: Logger): () => void {
  let busy = false;
  const moveOne = async (id: string, next: NonNullable<ReturnType<typeof nextShippingStep>>) => {
    try {
      await orders.setStatus(id, next);
    } catch (error) {
      // Another writer moved the order since we looked: a 409 then is expected, not a fault.
      if (error instanceof HttpError && error.status === 409) return;
      throw error;
    }
  };
  const moveAll = async () => {
    // A slow disk (or Redis) must not pile ticks on top of each other.
    if (busy) return;
    busy = true;
    try {
      const moves = (await orders.list()).flatMap((order) => {
        const next = order.demo ? nextShippingStep(order.status) : undefined;
        return next ? [moveOne(order.id, next)] : [];
      });
      await Promise.all(moves);
    } finally {
      busy = false;
    }
  };
  return runWhileListening(hub, { name: 'courier', channel: ORDERS_CHANNEL, intervalMs: courierMs }, moveAll, logger);
}
