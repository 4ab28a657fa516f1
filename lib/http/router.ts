/**
 * Routing: each feature hands over a list of routes (`paragraphRoutes`, `hubRoutes`, ...), and
 * `router` picks the one whose method and path match. HEAD runs the GET route (Node sends the
 * headers without the body; an event stream ends at once). A path that exists under another
 * method gets 405 with `Allow`, as HTTP asks; anything else falls through to the static files.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequirePublisher } from './access.ts';
import type { ClientAddress } from './addresses.ts';
import { HttpError } from './json.ts';
import type { OpenStream } from './stream-limits.ts';

/** `params` holds the `:name` segments of the route's path, decoded. */
export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, params: Record<string, string>) => void | Promise<void>;

export interface Route {
  method: 'GET' | 'POST';
  /** A path; a segment `:name` matches any one segment. */
  path: string;
  handle: Handler;
}

/** What a route without `:name` segments gets as its parameters (frozen: shared by every request). */
const NO_PARAMS: Record<string, string> = Object.freeze({});

/** Matches a path's segments against a route path's, returning its parameters, or undefined. */
function matchPath(want: readonly string[], have: readonly string[]): Record<string, string> | undefined {
  if (want.length !== have.length) return undefined;
  let params: Record<string, string> | undefined;
  for (let index = 0; index < want.length; index++) {
    const segment = want[index]!;
    const actual = have[index]!;
    if (segment.startsWith(':')) {
      if (actual === '') return undefined;
      try {
        (params ??= {})[segment.slice(1)] = decodeURIComponent(actual);
      } catch {
        throw new HttpError(400, 'Path is not valid percent-encoding');
      }
    } else if (segment !== actual) {
      return undefined;
    }
  }
  return params ?? NO_PARAMS;
}

/** One function for all `routes`; `fallback` answers GET and HEAD requests no route claims. */
export function router(routes: readonly Route[], fallback: Handler): (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void> {
  // Split each route's path once, not on every request.
  const compiled = routes.map((route) => ({ route, pattern: route.path.split('/') }));
  return (req, res, url) => {
    const segments = url.pathname.split('/');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    // The methods of the routes whose path matches, for a 405's `Allow` if none has this method.
    let allowed: string[] | undefined;
    for (const { route, pattern } of compiled) {
      const params = matchPath(pattern, segments);
      if (params === undefined) continue;
      if (route.method === method) return route.handle(req, res, url, params);
      (allowed ??= []).push(...(route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]));
    }
    if (allowed !== undefined) {
      throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: allowed.join(', ') });
    }
    if (req.method === 'GET' || req.method === 'HEAD') return fallback(req, res, url, NO_PARAMS);
    throw new HttpError(405, `Method ${req.method} is not allowed on ${url.pathname}`, { Allow: 'GET, HEAD' });
  };
}

/** What the server hands every feature's routes: how to open a stream, and the shared rules. */
export interface RouteContext {
  /** Opens an event stream behind the admission limits (./stream-limits.ts). */
  openStream: OpenStream;
  clientAddress: ClientAddress;
  /** Throws 401/403 unless the caller may publish (./access.ts). */
  requirePublisher: RequirePublisher;
  /** Largest request body accepted (413 past it). */
  maxBodyBytes: number;
  /** Public writes allowed per address per minute (429 past it). */
  postsPerMinute: number;
}
