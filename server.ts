/**
 * The table of contents: configuration in, the backend chosen, each feature's routes mounted,
 * listen, signals. Every line below points at the file that does the work; the README's
 * reading order says which to open first (lib/sse/, then lib/demos/paragraph.ts).
 *
 * Nothing happens on import: `createApp` builds a server, so every test builds its own, and
 * only running this file directly (`npm start`) listens on a port.
 */
import type { IncomingMessage, Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { StreamRegistry } from './lib/sse/registry.ts';
import { publisherCheck } from './lib/http/access.ts';
import { clientAddressReader } from './lib/http/addresses.ts';
import { DEFAULTS, loadConfig, type Config } from './lib/http/config.ts';
import { baseUrl, createHttpServer, listen } from './lib/http/http-server.ts';
import { stderrLogger, type Logger } from './lib/http/log.ts';
import { operationsRoutes } from './lib/http/operations.ts';
import type { RouteContext } from './lib/http/router.ts';
import { AcceptedWrites, onStopSignal, shutDownGracefully } from './lib/http/shutdown.ts';
import { limitedStreams } from './lib/http/stream-limits.ts';
import type { PubSub } from './lib/hub/pubsub.ts';
import { hubRoutes } from './lib/hub/routes.ts';
import { monitorRoutes, StatusMonitor } from './lib/demos/monitor.ts';
import { startCourier } from './lib/demos/orders/courier.ts';
import { orderRoutes } from './lib/demos/orders/routes.ts';
import type { Orders } from './lib/demos/orders/store.ts';
import { paragraphRoutes } from './lib/demos/paragraph.ts';
import { startTicker } from './lib/demos/ticker.ts';
import { createBackend } from './lib/scale/backend.ts';

export interface App {
  server: Server;
  config: Config;
  streams: StreamRegistry;
  hub: PubSub;
  orders: Orders;
  monitor: StatusMonitor;
  /** Listens on the configured host and port; resolves to the base URL (port 0 → a free one). */
  listen(): Promise<URL>;
  /** Stops accepting, ends every stream with a `retry:` hint, and waits (bounded) for the rest. */
  shutdown(): Promise<void>;
}

export interface AppOptions extends Partial<Config> {
  logger?: Logger;
  /** Where a request comes from; tests pass one to play a client from another machine. */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

export function createApp(options: AppOptions = {}): App {
  const { logger = stderrLogger, ...overrides } = options;
  const config: Config = { ...DEFAULTS, ...overrides };
  const clientAddress = options.clientAddress ?? clientAddressReader(config.trustProxy);

  // The protocol: every open stream, its heartbeats and stall checks (lib/sse/).
  const streams = new StreamRegistry({ heartbeatMs: config.heartbeatMs });
  const shared: RouteContext = {
    openStream: limitedStreams({
      registry: streams,
      clientAddress,
      retryMs: config.retryMs,
      maxBacklogBytes: config.maxBacklogBytes,
      maxStreams: config.maxStreams,
      maxStreamsPerAddress: config.maxStreamsPerAddress,
    }),
    clientAddress,
    requirePublisher: publisherCheck({ ...config, clientAddress }),
    maxBodyBytes: config.maxBodyBytes,
    postsPerMinute: config.postsPerMinute,
  };

  // Channels and orders live in this process, or in Redis when REDIS_URL is set (lib/scale/).
  const backend = createBackend(config, logger);
  const { hub, orders } = backend;

  // The demos that publish on their own: a ticker, a status monitor, a courier (lib/demos/).
  const stopTicker = startTicker(hub, config.tickMs, logger);
  const stopCourier = startCourier(hub, orders, config.courierMs, logger);
  const monitor = new StatusMonitor({
    hub,
    target: () => config.monitorUrl ?? new URL('/demo/flaky', baseUrl(server)),
    timeoutMs: config.monitorTimeoutMs,
    intervalMs: config.monitorIntervalMs,
    logger,
  });

  const writes = new AcceptedWrites();
  const server = createHttpServer({
    config,
    clientAddress,
    writes,
    logger,
    routes: [
      ...paragraphRoutes(shared.openStream), // GET /events
      ...hubRoutes({ ...shared, hub }), // GET /stream, POST /publish, POST /messages
      ...monitorRoutes(monitor), // GET /request_status, GET /demo/flaky
      ...orderRoutes({ ...shared, hub, orders, secret: backend.watchSecret }), // /orders…, GET /order_monitor
      ...operationsRoutes(streams, hub, { orders }), // GET /healthz, GET /metrics
    ],
  });

  return {
    server,
    config,
    streams,
    hub,
    orders,
    monitor,
    async listen() {
      await backend.start();
      return listen(server, config.port, config.host);
    },
    async shutdown() {
      await shutDownGracefully({
        server,
        writes,
        timeoutMs: config.shutdownTimeoutMs,
        stopProducers: () => {
          stopTicker();
          stopCourier();
          monitor.stop();
        },
        drain: () => orders.idle(),
        endStreams: () => {
          hub.flush();
          streams.endAll(config.retryMs);
        },
      });
      await backend.stop();
    },
  };
}

/** `npm start`: listen, and shut down gracefully on Ctrl-C or SIGTERM. */
async function main(): Promise<void> {
  const app = createApp(loadConfig(process.env));
  stderrLogger('server.listening', { url: (await app.listen()).href });
  onStopSignal(stderrLogger, async (signal) => {
    stderrLogger('server.stopping', { signal, streams: app.streams.size });
    await app.shutdown();
    stderrLogger('server.stopped');
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    stderrLogger('server.failed', { error: String(error instanceof Error ? error.message : error) });
    process.exit(1);
  });
}
