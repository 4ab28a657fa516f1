/**
 * The server: configuration in, routes to handlers, listen, shut down. Nothing happens on
 * import: `createApp` builds a server, so every test builds its own, and only running this
 * file directly (`npm start`) listens on a port.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { DEFAULTS, loadConfig, type Config } from './lib/http/config.ts';
import { corsHeaders, PREFLIGHT_HEADERS } from './lib/http/cors.ts';
import { startCourier } from './lib/demos/orders/courier.ts';
import { HttpError, sendJson } from './lib/http/json.ts';
import { createBackend } from './lib/scale/backend.ts';
import type { PubSub } from './lib/hub/pubsub.ts';
import { stderrLogger, type Logger } from './lib/http/log.ts';
import { handleMetrics } from './lib/http/metrics.ts';
import { handleFlaky, handleRequestStatus, StatusMonitor } from './lib/demos/monitor.ts';
import {
  handleCreateOrder,
  handleGetOrder,
  handleListOrders,
  handleOrderMonitor,
  handleSetStatus,
  type OrderContext,
} from './lib/demos/orders/routes.ts';
import type { Orders } from './lib/demos/orders/store.ts';
import { handleParagraph } from './lib/demos/paragraph.ts';
import { handleMessages, handlePublish, handleStream, type PubSubContext } from './lib/hub/routes.ts';
import { RateLimiter } from './lib/http/rate-limit.ts';
import { limitedStreams } from './lib/http/stream-limits.ts';
import { SseFormatError } from './lib/sse/format.ts';
import { StreamRegistry } from './lib/sse/registry.ts';
import { serveStatic } from './lib/http/static.ts';
import { startTicker } from './lib/demos/ticker.ts';

/** `params` holds the `:name` segments of the route's path, decoded. */
type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, params: Record<string, string>) => void | Promise<void>;

interface Route {
  method: 'GET' | 'POST';
  /** A path; a segment `:name` matches any one segment. */
  path: string;
  handle: Handler;
}

function socketAddress(req: IncomingMessage): string | undefined {
  return req.socket?.remoteAddress;
}

/**
 * Behind a reverse proxy (TRUST_PROXY=1), the client is the last address in X-Forwarded-For:
 * the one our proxy appended. Earlier entries were sent by the client and prove nothing.
 */
function forwardedAddress(req: IncomingMessage): string | undefined {
  const header = req.headers['x-forwarded-for'];
  const last = (Array.isArray(header) ? header.join(',') : header)?.split(',').at(-1)?.trim();
  return last || socketAddress(req);
}

/** Matches a path's segments against a route path's, returning its parameters, or undefined. */
function matchPath(want: readonly string[], have: readonly string[]): Record<string, string> | undefined {
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (const [index, segment] of want.entries()) {
    const actual = have[index]!;
    if (segment.startsWith(':')) {
      if (actual === '') return undefined;
      try {
        params[segment.slice(1)] = decodeURIComponent(actual);
      } catch {
        throw new HttpError(400, 'Path is not valid percent-encoding');
      }
    } else if (segment !== actual) {
      return undefined;
    }
  }
  return params;
}

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
  /**
   * The address a request comes from, for access checks and per-address limits. The default
   * is the socket's peer, or with `trustProxy` the proxy's last `X-Forwarded-For` entry.
   * Tests pass one to play a client from another machine.
   */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

export function createApp(options: AppOptions = {}): App {
  const { logger = stderrLogger, ...overrides } = options;
  const config: Config = { ...DEFAULTS, ...overrides };
  const clientAddress = options.clientAddress ?? (config.trustProxy ? forwardedAddress : socketAddress);
  const streams = new StreamRegistry({ heartbeatMs: config.heartbeatMs });
  const openStream = limitedStreams({
    registry: streams,
    retryMs: config.retryMs,
    maxBacklogBytes: config.maxBacklogBytes,
    maxStreams: config.maxStreams,
    maxStreamsPerAddress: config.maxStreamsPerAddress,
    clientAddress,
  });
  // Public writes (chat messages, orders) are rate limited per address; each its own budget.
  const messageLimit = new RateLimiter(config.postsPerMinute);
  const orderLimit = new RateLimiter(config.postsPerMinute);
  const rateLimited =
    (limiter: RateLimiter, action: string, handle: Handler): Handler =>
    (req, res, url, params) => {
      limiter.take(clientAddress(req) ?? 'unknown', action);
      return handle(req, res, url, params);
    };
  // In this process, or in Redis when REDIS_URL is set (lib/backend.ts).
  const backend = createBackend(config, logger);
  const { hub, orders } = backend;
  const pubsub: PubSubContext = {
    hub,
    openStream,
    publishKey: config.publishKey,
    clientAddress,
    maxBodyBytes: config.maxBodyBytes,
  };
  // The token secret is known once the backend has started (with Redis, it is shared there).
  const ordering: OrderContext = { ...pubsub, orders, secret: Buffer.alloc(0) };
  const monitor = new StatusMonitor({
    hub,
    target: () => config.monitorUrl ?? new URL('/demo/flaky', ownUrl()),
    timeoutMs: config.monitorTimeoutMs,
    intervalMs: config.monitorIntervalMs,
    logger,
  });
  const stopTicker = startTicker(hub, config.tickMs, logger);
  const stopCourier = startCourier(hub, orders, config.courierMs, logger);

  const routes: Route[] = [
    // 200 even when degraded (Redis away): every process shares that one Redis, so a 503 would
    // take them all out of a load balancer at once, and open streams do fine meanwhile.
    { method: 'GET', path: '/healthz', handle: (_req, res) => sendJson(res, 200, { status: hub.available ? 'ok' : 'degraded', streams: streams.size }) },
    { method: 'GET', path: '/events', handle: (req, res, url) => handleParagraph(openStream, req, res, url) },
    { method: 'GET', path: '/stream', handle: (req, res, url) => handleStream(pubsub, req, res, url) },
    { method: 'POST', path: '/publish', handle: (req, res) => handlePublish(pubsub, req, res) },
    { method: 'POST', path: '/messages', handle: rateLimited(messageLimit, 'send messages', (req, res) => handleMessages(pubsub, req, res)) },
    { method: 'GET', path: '/metrics', handle: (_req, res) => handleMetrics(streams, hub, res) },
    { method: 'GET', path: '/request_status', handle: (_req, res) => handleRequestStatus(monitor, res) },
    { method: 'GET', path: '/demo/flaky', handle: (_req, res) => handleFlaky(res) },
    { method: 'POST', path: '/orders', handle: rateLimited(orderLimit, 'place orders', (req, res) => handleCreateOrder(ordering, req, res)) },
    { method: 'GET', path: '/orders', handle: (req, res) => handleListOrders(ordering, req, res) },
    { method: 'GET', path: '/orders/:id', handle: (req, res, url, { id }) => handleGetOrder(ordering, req, res, url, id!) },
    { method: 'POST', path: '/orders/:id/status', handle: (req, res, _url, { id }) => handleSetStatus(ordering, req, res, id!) },
    { method: 'GET', path: '/order_monitor', handle: (req, res, url) => handleOrderMonitor(ordering, req, res, url) },
  ];

  // Split each route's path once, not on every request.
  const compiledRoutes = routes.map((route) => ({ route, pattern: route.path.split('/') }));

  // Shutdown state: once closing, new writes are refused, and shutdown waits for the writes
  // already accepted, so everything that got a 2xx is delivered before streams end.
  let closing = false;
  let writesInFlight = 0;
  const writesDone = new EventEmitter();

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Set first, so every answer below (stream, JSON, error) carries them.
    const cors = corsHeaders(req.headers.origin, config.allowedOrigins);
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'Request target is not a valid URL');
    }
    if (req.method === 'POST') {
      if (closing) throw new HttpError(503, 'The server is shutting down; try again shortly', { 'Retry-After': '5' });
      writesInFlight += 1;
      let counted = true;
      const done = () => {
        if (!counted) return;
        counted = false;
        writesInFlight -= 1;
        if (writesInFlight === 0) writesDone.emit('idle');
      };
      res.once('close', done);
      // A response queued behind a stream on a pipelined connection never closes by itself.
      if (res.socket === null) req.socket.once('close', done);
    }
    if (req.method === 'OPTIONS') {
      if (!('Access-Control-Allow-Origin' in cors)) throw new HttpError(403, 'This origin is not allowed (ALLOWED_ORIGINS)');
      res.writeHead(204, PREFLIGHT_HEADERS).end();
      return;
    }
    const segments = url.pathname.split('/');
    const matches = compiledRoutes.flatMap(({ route, pattern }) => {
      const params = matchPath(pattern, segments);
      return params ? [{ route, params }] : [];
    });
    const found = matches.find(({ route }) => route.method === req.method);
    if (found) return found.route.handle(req, res, url, found.params);
    if (matches.length > 0) {
      const allow = matches.map(({ route }) => route.method).join(', ');
      throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: allow });
    }
    if (req.method === 'GET' || req.method === 'HEAD') return serveStatic(config.publicDir, req, res);
    throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: 'GET, HEAD' });
  }

  /** One log line per request, when it ends; for a stream, that is when the client leaves. */
  function logWhenDone(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    // Read now: once the connection is gone, so is its socket.
    const address = clientAddress(req);
    // `on`, not `once`: 'close' fires once anyway, and `once` wraps every listener in another
    // function and object, which an open stream would keep alive for hours.
    res.on('close', () => {
      logger('request', {
        method: req.method,
        path: req.url?.split('?')[0],
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
        address,
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
  }

  /** Our own base URL, for the monitor's default target: loopback when listening on every address. */
  function ownUrl(): URL {
    const { address, port } = server.address() as AddressInfo;
    const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
    return new URL(`http://${host}:${port}/`);
  }

  const server = createServer(
    {
      // Slowloris defence: a client gets this long to send its headers, and its whole request.
      // Neither limit touches a response in progress, so live streams are never cut by them.
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      // How often Node checks those deadlines (its default, 30 s, would let them slip).
      connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
      // Events are small writes that must leave at once; Nagle's algorithm would hold them
      // back waiting for more. (Node's default since v18; stated because SSE depends on it.)
      noDelay: true,
    },
    (req, res) => {
      logWhenDone(req, res);
      Promise.resolve()
        .then(() => dispatch(req, res))
        .catch((error: unknown) => {
          // Once a stream or file has started, the status line is gone; all we can do is hang up.
          if (res.headersSent) {
            res.destroy();
            return;
          }
          if (error instanceof HttpError || error instanceof SseFormatError) {
            const status = error instanceof HttpError ? error.status : 400;
            const headers = error instanceof HttpError ? { ...error.headers } : {};
            // An unread request body would be parsed as the next request: close the connection.
            if (!req.complete) headers['Connection'] = 'close';
            sendJson(res, status, { error: error.message }, headers);
            return;
          }
          // Internals stay in the log; the client learns only that it was not its fault.
          logger('request.error', { method: req.method, url: req.url, error: String((error as Error)?.stack ?? error) });
          sendJson(res, 500, { error: 'Internal server error' });
        });
    },
  );

  // Requests too broken to reach a handler (malformed, headers too large, too slow) still get
  // a JSON answer instead of a bare status line, then the connection closes.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // Bytes already written mean a response (perhaps a stream) is under way on this
    // connection: an error answer now would land in the middle of its body. Just hang up.
    if (!socket.writable || error.code === 'ECONNRESET' || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    const [status, message] =
      error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request took too long to arrive']
      : [400, 'Malformed HTTP request'];
    const body = JSON.stringify({ error: message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  return {
    server,
    config,
    streams,
    hub,
    orders,
    monitor,
    async listen() {
      ordering.secret = await backend.start();
      await new Promise<void>((resolveListen, rejectListen) => {
        server.once('error', rejectListen);
        server.listen(config.port, config.host, () => {
          server.off('error', rejectListen);
          resolveListen();
        });
      });
      return ownUrl();
    },
    async shutdown() {
      closing = true;
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      stopTicker();
      stopCourier();
      monitor.stop();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolveDeadline) => {
        timer = setTimeout(resolveDeadline, config.shutdownTimeoutMs);
      });
      // Writes already accepted finish first (publishes, order changes saving to disk), so
      // their events are written to the streams before the streams end.
      const writes = writesInFlight === 0 ? Promise.resolve() : once(writesDone, 'idle');
      await Promise.race([Promise.all([writes, orders.idle()]), deadline]);
      hub.flush();
      // Then every stream gets a `retry:` saying when to come back, and ends.
      streams.endAll(config.retryMs);
      server.closeIdleConnections();
      await Promise.race([closed, deadline]);
      clearTimeout(timer);
      // Whatever is still open after the deadline (a client that never reads) is cut.
      server.closeAllConnections();
      await backend.stop();
    },
  };
}

/** `npm start`: listen, and shut down cleanly on Ctrl-C or a service manager's SIGTERM. */
async function main(): Promise<void> {
  const app = createApp({ ...loadConfig(process.env) });
  const url = await app.listen();
  stderrLogger('server.listening', { url: url.href });
  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    // A second Ctrl-C means "now": skip the graceful part.
    if (stopping) process.exit(1);
    stopping = true;
    stderrLogger('server.stopping', { signal, streams: app.streams.size });
    await app.shutdown();
    stderrLogger('server.stopped');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    stderrLogger('server.failed', { error: String(error instanceof Error ? error.message : error) });
    process.exit(1);
  });
}
