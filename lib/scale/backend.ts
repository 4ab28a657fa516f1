/**
 * Chooses where channels and orders live: in this process (the default, no dependencies), or
 * in Redis when REDIS_URL is set, so several processes share them. `server.ts` wires the
 * result; everything else depends only on the `PubSub` and `Orders` interfaces.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../http/config.ts';
import { writeFileAtomically } from '../hub/durable-file.ts';
import { Hub, type PubSub, type SavedHistory } from '../hub/memory-hub.ts';
import type { Logger } from '../http/log.ts';
import { loadSecret, publishOrder } from '../demos/orders/routes.ts';
import { OrderStore, type Orders } from '../demos/orders/store.ts';
import { RedisHub } from './redis-hub.ts';
import { RedisOrderStore } from './redis-orders.ts';

export interface Backend {
  hub: PubSub;
  orders: Orders;
  /** Connects (Redis) and resolves with the secret for order watch tokens. */
  start(): Promise<Buffer>;
  /** At shutdown: saves the in-process history for the next run, or disconnects from Redis. */
  stop(): Promise<void>;
}

/**
 * The in-process hub's history, kept across a graceful restart. It is read once and deleted at
 * once: if this run then crashed, a stale copy must not come back next time and hand out ids
 * this run already used. Without the file, ids start afresh and old ones get `reset`.
 */
function takeSavedHistory(file: string): SavedHistory | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  unlinkSync(file);
  return JSON.parse(text) as SavedHistory;
}

export function createBackend(config: Config, logger: Logger): Backend {
  if (config.redisUrl === undefined) {
    const orders = new OrderStore(config.dataDir, { maxOrders: config.maxOrders, onChange: (order) => publishOrder(hub, order) });
    // After the order store: it creates DATA_DIR.
    const historyFile = join(config.dataDir, 'history.json');
    const hub = new Hub({ historySize: config.historySize, maxChannels: config.maxChannels, saved: takeSavedHistory(historyFile) });
    const secret = loadSecret(config.dataDir, config.orderSecret);
    return {
      hub,
      orders,
      start: async () => secret,
      stop: () => writeFileAtomically(historyFile, JSON.stringify(hub.save())),
    };
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
    stop: () => hub.close(),
  };
}
