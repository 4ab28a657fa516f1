/**
 * Who is asking: the address that access checks and per-address limits key on.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export type ClientAddress = (req: IncomingMessage) => string | undefined;

function socketAddress(req: IncomingMessage): string | undefined {
  return req.socket?.remoteAddress;
}

/**
 * Behind a reverse proxy (TRUST_PROXY=1), the client is the last address in X-Forwarded-For:
 * the one our proxy appended. Earlier entries were sent by the client and prove nothing.
 *
 * When that entry is missing, empty or not an IP address, the client is unknown. Falling back
 * to the socket's address would be wrong in the worst way: that is the proxy itself, often on
 * loopback, and loopback may publish.
 */
function forwardedAddress(req: IncomingMessage): string | undefined {
  const header = req.headers['x-forwarded-for'];
  const last = (Array.isArray(header) ? header.join(',') : header)?.split(',').at(-1)?.trim();
  return last !== undefined && isIP(last) !== 0 ? last : undefined;
}

/** The socket's peer, or with `trustProxy` the proxy's last `X-Forwarded-For` entry. */
export function clientAddressReader(trustProxy: boolean): ClientAddress {
  return trustProxy ? forwardedAddress : socketAddress;
}
