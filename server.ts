/**
 * The server: configuration in, routes to handlers, listen, shut down. Nothing happens on
 * import: `createApp` builds a server, so every test builds its own, and only running this
 * file directly (`npm start`) listens on a port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { DEFAULTS, loadConfig, type Config } from './lib/config.ts';
import { HttpError, sendJson } from './lib/http.ts';
import { stderrLogger, type Logger } from './lib/log.ts';
import { Hub } from './lib/hub.ts';
import { handleMetrics } from './lib/metrics.ts';
import { handleParagraph } from './lib/paragraph.ts';
import { handleMessages, handlePublish, handleStream, type PubSubContext } from './lib/pubsub.ts';
import { SseFormatError, StreamRegistry, type StreamOptions } from './lib/sse.ts';
import { serveStatic } from './lib/static.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

interface Route {
  method: 'GET' | 'POST';
  path: string;
  handle: Handler;
}

export interface App {
  server: Server;
  config: Config;
  streams: StreamRegistry;
  hub: Hub;
  /** Listens on the configured host and port; resolves to the base URL (port 0 → a free one). */
  listen(): Promise<URL>;
  /** Stops accepting, ends every stream with a `retry:` hint, and waits (bounded) for the rest. */
  shutdown(): Promise<void>;
}

export interface AppOptions extends Partial<Config> {
  logger?: Logger;
  /**
   * The address a request comes from, for access checks. The default is the socket's peer.
   * Behind a reverse proxy that is the proxy; this is where you would read the proxy's
   * `X-Forwarded-For` instead (only for proxies you trust: clients can send that header too).
   */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

export function createApp(options: AppOptions = {}): App {
  const { logger = stderrLogger, clientAddress = (req) => req.socket.remoteAddress, ...overrides } = options;
  const config: Config = { ...DEFAULTS, ...overrides };
  const streams = new StreamRegistry({ heartbeatMs: config.heartbeatMs });
  const streamOptions: StreamOptions = { retryMs: config.retryMs, maxBacklogBytes: config.maxBacklogBytes };
  const hub = new Hub({ historySize: config.historySize, maxChannels: config.maxChannels });
  const pubsub: PubSubContext = { hub, streams, streamOptions, publishKey: config.publishKey, clientAddress };

  const routes: Route[] = [
    { method: 'GET', path: '/healthz', handle: (_req, res) => sendJson(res, 200, { status: 'ok', streams: streams.size }) },
    { method: 'GET', path: '/events', handle: (req, res, url) => handleParagraph(streams, streamOptions, req, res, url) },
    { method: 'GET', path: '/stream', handle: (req, res, url) => handleStream(pubsub, req, res, url) },
    { method: 'POST', path: '/publish', handle: (req, res) => handlePublish(pubsub, req, res) },
    { method: 'POST', path: '/messages', handle: (req, res) => handleMessages(pubsub, req, res) },
    { method: 'GET', path: '/metrics', handle: (_req, res) => handleMetrics(streams, hub, res) },
  ];

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const matches = routes.filter((route) => route.path === url.pathname);
    const route = matches.find((candidate) => candidate.method === req.method);
    if (route) return route.handle(req, res, url);
    if (matches.length > 0) {
      const allow = matches.map((candidate) => candidate.method).join(', ');
      throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: allow });
    }
    if (req.method === 'GET' || req.method === 'HEAD') return serveStatic(config.publicDir, req, res);
    throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: 'GET, HEAD' });
  }

  const server = createServer((req, res) => {
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
  });

  return {
    server,
    config,
    streams,
    hub,
    async listen() {
      await new Promise<void>((resolveListen, rejectListen) => {
        server.once('error', rejectListen);
        server.listen(config.port, config.host, () => {
          server.off('error', rejectListen);
          resolveListen();
        });
      });
      const { port } = server.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      return new URL(`http://${host}:${port}/`);
    },
    async shutdown() {
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      streams.endAll(config.retryMs);
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolveDeadline) => {
        timer = setTimeout(resolveDeadline, config.shutdownTimeoutMs);
      });
      await Promise.race([closed, deadline]);
      clearTimeout(timer);
      // Whatever is still open after the deadline (a client that never reads) is cut.
      server.closeAllConnections();
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
