/**
 * A token bucket per client address: each address may spend `perMinute` tokens a minute, with
 * bursts up to that many. Past it, the caller answers 429 with Retry-After. An IPv6 client's
 * "address" is its /64 (`limitKey` in ./addresses.ts): one host owns a whole /64 and could
 * otherwise take a fresh bucket per request.
 *
 * The map of buckets is itself bounded: an attacker cycling through addresses (easy with IPv6)
 * must not grow it without end, so past `maxAddresses` the stalest bucket is forgotten, which
 * at worst hands that address a fresh allowance.
 */
import { limitKey, type ClientAddress } from './addresses.ts';
import { HttpError } from './json.ts';
import type { Handler } from './router.ts';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  readonly #perMinute: number;
  readonly #maxAddresses: number;
  /** In least-recently-used order: a Map iterates in insertion order, and we re-insert on use. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(perMinute: number, maxAddresses = 10_000) {
    this.#perMinute = perMinute;
    this.#maxAddresses = maxAddresses;
  }

  /** Spends one token for `address`, or throws 429 saying when to try again. */
  take(address: string, action: string, now = Date.now()): void {
    const refillPerMs = this.#perMinute / 60_000;
    const bucket = this.#buckets.get(address) ?? { tokens: this.#perMinute, updatedAt: now };
    bucket.tokens = Math.min(this.#perMinute, bucket.tokens + (now - bucket.updatedAt) * refillPerMs);
    bucket.updatedAt = now;
    this.#buckets.delete(address);
    this.#buckets.set(address, bucket);
    if (this.#buckets.size > this.#maxAddresses) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (bucket.tokens < 1) {
      const retryAfter = Math.ceil((1 - bucket.tokens) / refillPerMs / 1000);
      throw new HttpError(429, `Too many requests to ${action}: at most ${this.#perMinute} a minute`, {
        'Retry-After': String(retryAfter),
      });
    }
    bucket.tokens -= 1;
  }
}

/** Wraps a public write's handler so that each call first spends one of its caller's tokens. */
export function rateLimited(perMinute: number, action: string, clientAddress: ClientAddress, handle: Handler): Handler {
  // One limiter per action: sending chat messages does not use up the budget for orders.
  const limiter = new RateLimiter(perMinute);
  return (req, res, url, params) => {
    limiter.take(limitKey(clientAddress(req)), action);
    return handle(req, res, url, params);
  };
}
