/**
 * Cross-origin access (CORS) for pages on other sites, from an allow-list (ALLOWED_ORIGINS).
 *
 * `new EventSource(url, { withCredentials: true })` sends cookies, and then the browser insists
 * on `Access-Control-Allow-Origin` naming the page's exact origin plus
 * `Access-Control-Allow-Credentials: true`. A wildcard `*` is never allowed together with
 * credentials (browsers refuse it, rightly: it would let any site read a user's stream), so
 * `*` in the list allows any origin without credentials, and named origins get credentials.
 */

/** A same-origin request (no `Origin`): nothing to add, and nothing to allocate per request. */
const NONE: Readonly<Record<string, string>> = Object.freeze({});

/** The headers to add for a request from `origin`, or none when it is not allowed. */
export function corsHeaders(origin: string | undefined, allowed: readonly string[]): Readonly<Record<string, string>> {
  if (origin === undefined) return NONE;
  // Caches must key on Origin, or one site's answer would be served to another.
  const vary = { Vary: 'Origin' };
  if (allowed.includes(origin)) {
    return {
      ...vary,
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Credentials': 'true',
      'Access-Control-Expose-Headers': 'Retry-After',
    };
  }
  if (allowed.includes('*')) return { ...vary, 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Retry-After' };
  return vary;
}

/** Extra headers for a preflight (`OPTIONS`) that the browser sends before a JSON POST. */
export const PREFLIGHT_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Methods': 'GET, POST',
  'Access-Control-Allow-Headers': 'Content-Type, Authorization, Last-Event-ID',
  'Access-Control-Max-Age': '600',
};
