/**
 * Chooses where channels and orders live: in this process (the default, no dependencies), or
 * in Redis when REDIS_URL is set, so several processes share them. `server.ts` wires the
 * result; everything else depends only on the `PubSub` and `Orders` interfaces.
 */
import type { Config } from './config.ts';
import { Hub, type PubSub } from './hub.ts';
import type { Logger } from './log.ts';
import { loadSecret, publishOrder } from './order-monitor.ts';
import { OrderStore, type Orders } from './orders.ts';
import { RedisHub } from './redis-hub.ts';
import { RedisOrderStore } from './redis-orders.ts';

export interface Backend {
  hub: PubSub;
  orders: Orders;
  /** Connects (Redis) and resolves with the secret for order watch tokens. */
  start(): Promise<Buffer>;
}

export function createBackend(config: Config, logger: Logger): Backend {
  if (config.redisUrl === undefined) {
    const hub = new Hub({ historySize: config.historySize, maxChannels: config.maxChannels });
    const orders = new OrderStore(config.dataDir, { maxOrders: config.maxOrders, onChange: (order) => publishOrder(hub, order) });
    const secret = loadSecret(config.dataDir, config.orderSecret);
    return { hub, orders, start: async () => secret };
  }
  const hub = new RedisHub({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    historySize: config.historySize,
    maxChannels: config.maxChannels,
    logger,
  });
  const orders = new RedisOrderStore(hub, { maxOrders: config.maxOrders });
  return {
    hub,
    orders,
    async start() {
      await hub.start();
      return orders.secret(config.orderSecret);
    },
  };
}
