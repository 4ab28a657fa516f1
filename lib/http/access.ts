/**
 * Who may publish. Subscribing is public; publishing changes what every subscriber sees, so
 * it needs either the shared key (`Authorization: Bearer <PUBLISH_KEY>`) or, when no key is
 * configured, a request from this machine. That default keeps a fresh checkout safe: nobody on
 * the network can publish until you choose a key.
 *
 * "From this machine" is judged by two things, not one. The peer address must be loopback,
 * and the `Host` header must name this machine too (`localhost`, `127.x.y.z`, `[::1]`, or a
 * name listed in ALLOWED_HOSTS). The second check stops DNS rebinding: a page on
 * `rebind.evil.example` whose name the attacker re-points at 127.0.0.1 reaches us over
 * loopback from the victim's own browser, but its requests still say `Host: rebind.evil.example`.
 *
 * And a browser request from another site (an `Origin` that is neither ours nor named in
 * ALLOWED_ORIGINS) may never publish, whatever else it carries: a publisher route acts with
 * the authority of whoever is sitting at the machine, and a foreign page must not borrow it.
 * `*` in ALLOWED_ORIGINS lets any site read streams, never publish.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { ClientAddress } from './addresses.ts';
import { HttpError } from './json.ts';

/** True for 127.0.0.0/8, ::1, and IPv4 loopback written as an IPv6-mapped address. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

/** The host name of a `Host` header, without its port, lower-cased; undefined if malformed. */
function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined;
  try {
    return new URL(`http://${host}/`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * True when a host name can only mean this machine: `localhost` and its subdomains (browsers
 * resolve those to loopback themselves, RFC 6761), or a loopback address written out.
 */
function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return isLoopback(name.startsWith('[') ? name.slice(1, -1) : name);
}

/**
 * Compares secrets in constant time. Hashing first gives both sides the same length, which
 * `timingSafeEqual` requires, without revealing the key's length through an early return.
 */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export interface PublisherRules {
  publishKey: string | undefined;
  clientAddress: ClientAddress;
  /** Host names, besides loopback ones, under which requests from this machine are trusted. */
  allowedHosts: readonly string[];
  /** Other sites whose pages may call the publisher routes (CORS allow-list; `*` does not count). */
  allowedOrigins: readonly string[];
}

/** Throws 401 or 403 unless the request may publish. */
export type RequirePublisher = (req: IncomingMessage) => void;

export function publisherCheck(rules: PublisherRules): RequirePublisher {
  const allowedHosts = new Set(rules.allowedHosts.map((host) => host.toLowerCase()));
  return (req) => {
    const origin = req.headers.origin;
    if (origin !== undefined && !rules.allowedOrigins.includes(origin) && !sameOrigin(origin, req.headers.host)) {
      throw new HttpError(403, `A page from ${origin} may not publish here (it is not in ALLOWED_ORIGINS)`);
    }
    if (rules.publishKey) {
      const header = req.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      if (!sameSecret(given, rules.publishKey)) {
        throw new HttpError(401, 'Publishing needs Authorization: Bearer <PUBLISH_KEY>', { 'WWW-Authenticate': 'Bearer' });
      }
      return;
    }
    if (!isLoopback(rules.clientAddress(req))) {
      throw new HttpError(403, 'Publishing is allowed from this machine only until PUBLISH_KEY is set');
    }
    const name = hostName(req.headers.host);
    if (name === undefined || !(isLoopbackName(name) || allowedHosts.has(name))) {
      throw new HttpError(403, `Publishing from this machine needs a loopback Host (or one in ALLOWED_HOSTS), not ${JSON.stringify(req.headers.host ?? '')}`);
    }
  };
}

/** True when a page's `Origin` is this server itself, as the browser reached it. */
function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    const page = new URL(origin);
    return host !== undefined && page.host === new URL(`${page.protocol}//${host}/`).host;
  } catch {
    // `Origin: null` (a sandboxed frame, a file:// page) and garbage are never us.
    return false;
  }
}
