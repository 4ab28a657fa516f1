/**
 * Watch tokens: watching one order needs its token, an HMAC of the order id under a server
 * secret. Only whoever created the order (or was given the link) can follow it, and guessing
 * ids gets nobody anywhere.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../../http/json.ts';

/**
 * The secret behind watch tokens: ORDER_SECRET if set, else one generated once and kept beside
 * the orders (readable by the owner only), so tokens stay valid across restarts.
 */
export function loadSecret(dataDir: string, configured: string | undefined): Buffer {
  if (configured) return Buffer.from(configured);
  const file = join(dataDir, 'secret');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    // `wx`: if two processes race to create it, the second fails instead of overwriting.
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
  }
  return Buffer.from(readFileSync(file, 'utf8').trim());
}

export function watchToken(secret: Buffer, orderId: string): string {
  return createHmac('sha256', secret).update(orderId).digest('base64url');
}

/** Throws 401/403 unless `token` is this order's token; constant time, like any secret compare. */
export function requireToken(secret: Buffer, orderId: string, token: string | null): void {
  if (token === null || token === '') throw new HttpError(401, 'Watching one order needs its token (?token=)');
  const expected = Buffer.from(watchToken(secret, orderId));
  const given = Buffer.from(token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new HttpError(403, 'That token does not match the order');
  }
}
