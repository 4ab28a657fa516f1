/**
 * Chooses where channels and orders live: in this process (the default, no dependencies), or
 * in Redis when REDIS_URL is set, so several processes share them. Either way the hub is the
 * same `Hub` (lib/hub/hub.ts) over a different store; `server.ts` mounts the result, and
 * everything else depends only on the `PubSub` and `Orders` interfaces.
 */
import { join } from 'node:path';
import { loadSecret } from '../demos/orders/tokens.ts';
import { OrderStore, type Orders } from '../demos/orders/store.ts';
import type { Config } from '../http/config.ts';
import type { Logger } from '../http/log.ts';
import { saveHistory, takeSavedHistory } from '../hub/history-file.ts';
import { Hub } from '../hub/hub.ts';
import { MemoryStore } from '../hub/memory-store.ts';
import type { PubSub } from '../hub/pubsub.ts';
import { RedisOrderStore } from './redis-orders.ts';
import { RedisStore } from './redis-store.ts';

export interface Backend {
  hub: PubSub;
  orders: Orders;
  /** Connects (Redis), and learns the secret for order watch tokens. */
  start(): Promise<void>;
  /** The key for order watch tokens; known once `start` has resolved. */
  watchSecret(): Buffer;
  /**
   * At shutdown: closes the order log and saves the in-process history for the next run (a
   * disk that refuses is logged, and shutdown goes on), or disconnects from Redis.
   */
  stop(): Promise<void>;
}

export function createBackend(config: Config, logger: Logger): Backend {
  const { historySize, maxChannels, maxOrders } = config;
  // A replay is a piece of history copied for one client: its bound is the stream's backlog
  // bound, and all replays waiting for their sockets may hold as much as history itself.
  const replayBounds = { maxReplayBytes: config.maxBacklogBytes, maxReplayBytesWaiting: config.historyMaxBytes };
  if (config.redisUrl === undefined) {
    const historyFile = join(config.dataDir, 'history.json');
    const store = new MemoryStore({
      historySize,
      maxChannels,
      maxBytes: config.historyMaxBytes,
      saved: takeSavedHistory(historyFile, logger),
    });
    const hub = new Hub(store, { logger, ...replayBounds });
    // The order store creates DATA_DIR; the secret is kept beside the orders.
    const orders = new OrderStore(config.dataDir, { maxOrders, hub, logger });
    const secret = loadSecret(config.dataDir, config.orderSecret);
    return {
      hub,
      orders,
      start: async () => {},
      watchSecret: () => secret,
      stop: async () => {
        hub.flush();
        try {
          await orders.close();
        } finally {
          // Whatever closing the order log met, the history is still worth saving.
          await saveHistory(historyFile, store, logger);
        }
      },
    };
  }
  const store = new RedisStore({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    historySize,
    maxChannels,
    maxBytes: config.historyMaxBytes,
    logger,
  });
  const hub = new Hub(store, { logger, ...replayBounds });
  const orders = new RedisOrderStore(store, { maxOrders });
  let secret: Buffer | undefined;
  return {
    hub,
    orders,
    async start() {
      await store.start();
      secret = await orders.secret(config.orderSecret);
    },
    watchSecret() {
      if (secret === undefined) throw new Error('The order watch secret is known only once the Redis backend has started');
      return secret;
    },
    stop: () => hub.close(),
  };
}
