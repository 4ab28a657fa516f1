/**
 * The `node:http` server every route runs in, and the path each request takes through it:
 * logged when it ends → CORS headers → Host required → URL parsed → preflight answered →
 * writes counted for shutdown → routed → errors answered as JSON.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClientAddress } from './addresses.ts';
import type { Config } from './config.ts';
import { corsHeaders, PREFLIGHT_HEADERS } from './cors.ts';
import { noteResponse } from './answer-order.ts';
import { answerClientError, answerConnect, answerError } from './errors.ts';
import { HttpError, sendJson } from './json.ts';
import type { Logger } from './log.ts';
import { requestLogger } from './request-log.ts';
import { router, type Route } from './router.ts';
import type { AcceptedWrites } from './shutdown.ts';
import { serveStatic } from './static.ts';
import { isEventStream } from '../sse/stream.ts';

export interface HttpServerOptions {
  config: Config;
  routes: readonly Route[];
  clientAddress: ClientAddress;
  writes: AcceptedWrites;
  logger: Logger;
}

export function createHttpServer({ config, routes, clientAddress, writes, logger }: HttpServerOptions): Server {
  const route = router(routes, (req, res) => serveStatic(config.publicDir, req, res));
  const logRequest = requestLogger(clientAddress, logger);

  /**
   * What every request goes through first: its log line, and its place in its connection's
   * order of answers (./answer-order.ts). False when the connection was closed instead: one
   * request sent behind an event stream that is still open would wait for it to end, in
   * practice for ever. EventSource never does this, but a client that pipelines would pile up
   * requests no answer can reach (and stream slots, when they ask for streams).
   */
  function arrive(req: IncomingMessage, res: ServerResponse): boolean {
    logRequest(req, res);
    const before = noteResponse(res);
    if (before !== undefined && !before.writableEnded && isEventStream(before)) {
      req.socket.destroy();
      return false;
    }
    return true;
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Set first, so every answer below (stream, JSON, error) carries them.
    const cors = corsHeaders(req.headers.origin, config.allowedOrigins);
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
    // HTTP/1.1 requires Host (RFC 9112 §3.2). Checked here rather than by Node
    // (`requireHostHeader: false` below), whose refusal is a 400 with an empty body.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined) {
      throw new HttpError(400, 'Host header is required');
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'Request target is not a valid URL');
    }
    if (req.method === 'OPTIONS') {
      if (!('Access-Control-Allow-Origin' in cors)) throw new HttpError(403, 'This origin is not allowed (ALLOWED_ORIGINS)');
      res.writeHead(204, PREFLIGHT_HEADERS).end();
      return;
    }
    if (req.method === 'POST') writes.admit(req, res);
    return route(req, res, url);
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
      requireHostHeader: false,
    },
    (req, res) => {
      if (!arrive(req, res)) return;
      // `dispatch` is async, so whatever a route throws, even before its first await, arrives
      // here as a rejection and is answered as JSON.
      dispatch(req, res).catch((error: unknown) => answerError(req, res, error, logger));
    },
  );
  server.on('clientError', answerClientError);
  server.on('connect', answerConnect);
  // An `Expect` other than `100-continue` is one we cannot meet: without this listener Node
  // answers 417 itself, with an empty body.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    if (!arrive(req, res)) return;
    sendJson(res, 417, { error: 'Expect is not met: only 100-continue is' }, { Connection: 'close' });
  });
  return server;
}

/** Listens on `host:port` (port 0 → a free one) and resolves to the server's base URL. */
export async function listen(server: Server, port: number, host: string): Promise<URL> {
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(port, host, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  return baseUrl(server);
}

/** Where this server can be reached from this machine: loopback when it listens on every address. */
export function baseUrl(server: Server): URL {
  const { address, port } = server.address() as AddressInfo;
  const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
  return new URL(`http://${host}:${port}/`);
}
