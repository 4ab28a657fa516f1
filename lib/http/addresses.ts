/**
 * Who is asking: the address that access checks and per-address limits key on, and the key
 * those limits count under (an IPv6 client counts per /64, see `limitKey`).
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

/**
 * The key that per-address limits (rate limits, open streams) count under: an IPv4 client by
 * its address, an IPv6 client by its /64 network.
 *
 * Why /64: an IPv6 host is normally handed a whole /64 (SLAAC, or a provider's prefix per
 * customer) and may pick any of its 2^64 addresses, a fresh one per request if it likes. Counting
 * per address would give it a fresh allowance every time; a /64 is what one host or one site
 * really owns, so that is what we count. An IPv4 client seen through a dual-stack socket
 * (`::ffff:192.0.2.1`) is an IPv4 client: it keeps its own key, the plain IPv4 address.
 * Anything that is not an IP address (`undefined`, a test's label) is its own key.
 */
export function limitKey(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  // No colon, no IPv6: the common IPv4 case skips the parsing below (it ran on every new stream).
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address);
  if (groups === undefined) return address;
  const [a, b, c, d, e, f, g, h] = groups as [number, number, number, number, number, number, number, number];
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff) {
    return [g >> 8, g & 0xff, h >> 8, h & 0xff].join('.');
  }
  // Written out without zero compression or leading zeros, so every spelling gives one key.
  return `${[a, b, c, d].map((group) => group.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (zone index dropped), or undefined for anything else. */
function ipv6Groups(address: string): number[] | undefined {
  // A zone index (`fe80::1%eth0`) names one of our interfaces, not part of the client's address.
  const text = address.split('%')[0]!;
  if (isIP(text) !== 6) return undefined;
  const parse = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((piece) => {
          // The last 32 bits may be written as IPv4 (`::ffff:192.0.2.1`): two groups.
          if (!piece.includes('.')) return [Number.parseInt(piece, 16)];
          const [w, x, y, z] = piece.split('.').map(Number) as [number, number, number, number];
          return [(w << 8) | x, (y << 8) | z];
        });
  const [head = '', tail] = text.split('::');
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  // `::` stands for as many zero groups as the address needs to have eight.
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}
