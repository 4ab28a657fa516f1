/**
 * Who may publish. Subscribing is public; publishing changes what every subscriber sees, so
 * it needs either the shared key (`Authorization: Bearer <PUBLISH_KEY>`) or, when no key is
 * configured, a request from this machine. That default keeps a fresh checkout safe: nobody on
 * the network can publish until you choose a key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './json.ts';

/** True for 127.0.0.0/8, ::1, and IPv4 loopback written as an IPv6-mapped address. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

/**
 * Compares secrets in constant time. Hashing first gives both sides the same length, which
 * `timingSafeEqual` requires, without revealing the key's length through an early return.
 */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Throws 401 or 403 unless the request may publish. */
export function requirePublisher(req: IncomingMessage, clientAddress: string | undefined, publishKey: string | undefined): void {
  if (publishKey) {
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (!sameSecret(given, publishKey)) {
      throw new HttpError(401, 'Publishing needs Authorization: Bearer <PUBLISH_KEY>', { 'WWW-Authenticate': 'Bearer' });
    }
    return;
  }
  if (!isLoopback(clientAddress)) {
    throw new HttpError(403, 'Publishing is allowed from this machine only until PUBLISH_KEY is set');
  }
}
