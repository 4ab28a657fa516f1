import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { limitKey } from '../../lib/http/addresses.ts';
import { eventually, jsonBody, startApp, StreamClient } from '../support/harness.ts';

describe('per-address limits count an IPv6 client by its /64', () => {
  it('gives every address of one /64, however it is written, the same key', () => {
    const spellings = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2::', 'fe80::1%eth0'];
    const keys = spellings.map(limitKey);
    assert.deepEqual(keys.slice(0, 4), Array(4).fill('2001:db8:1:2::/64'));
    assert.equal(keys[4], 'fe80:0:0:0::/64');
    assert.equal(limitKey('::1'), '0:0:0:0::/64');
    assert.equal(limitKey('1::'), '1:0:0:0::/64');
  });

  it('keeps neighbouring /64s apart', () => {
    assert.notEqual(limitKey('2001:db8:1:2::1'), limitKey('2001:db8:1:3::1'));
    assert.notEqual(limitKey('2001:db8::1'), limitKey('2001:db9::1'));
  });

  it('keeps IPv4 per address, also when a dual-stack socket writes it as IPv4-mapped IPv6', () => {
    assert.equal(limitKey('203.0.113.7'), '203.0.113.7');
    assert.equal(limitKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(limitKey('::FFFF:cb00:7107'), '203.0.113.7');
    assert.notEqual(limitKey('::ffff:203.0.113.7'), limitKey('::ffff:203.0.113.8'));
  });

  it('leaves anything that is not an address as it is', () => {
    assert.equal(limitKey(undefined), 'unknown');
    assert.equal(limitKey('not an address'), 'not an address');
    assert.equal(limitKey('2001:db8::1::2'), '2001:db8::1::2');
  });

  it('rate limits and admits streams per /64 over HTTP, and IPv4-mapped clients per address', async () => {
    let address = '2001:db8:1:2::1';
    const running = await startApp({ postsPerMinute: 1, maxStreamsPerAddress: 1, clientAddress: () => address });
    after(() => running.close());
    const send = () =>
      fetch(new URL('/messages', running.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'c', message: 'hi' }),
      });
    assert.equal((await send()).status, 202);
    // Another address of the same /64 is the same client: no fresh allowance.
    address = '2001:db8:1:2:dead:beef:0:1';
    const limited = await send();
    assert.equal(limited.status, 429);
    assert.match((await jsonBody(limited)).error, /at most 1 a minute/);
    address = '2001:db8:1:3::1';
    assert.equal((await send()).status, 202);
    address = '::ffff:203.0.113.1';
    assert.equal((await send()).status, 202);
    address = '::ffff:203.0.113.2';
    assert.equal((await send()).status, 202);

    // One open stream per client: a second from the same /64 is refused, another /64 is let in.
    address = '2001:db8:5:6::1';
    const first = new StreamClient(new URL('/stream', running.url));
    assert.equal((await first.opened()).statusCode, 200);
    address = '2001:db8:5:6::2';
    assert.equal((await fetch(new URL('/stream', running.url))).status, 429);
    address = '2001:db8:5:7::1';
    const other = new StreamClient(new URL('/stream', running.url));
    assert.equal((await other.opened()).statusCode, 200);
    first.abort();
    other.abort();
    await eventually(() => running.app.streams.size === 0, 5000, 'the streams to close');
  });
});
