import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually, jsonBody, startApp, StreamClient } from '../support/harness.ts';

describe('the server', async () => {
  const running = await startApp();
  after(() => running.close());

  it('reports health as JSON', async () => {
    const response = await fetch(new URL('/healthz', running.url));
    assert.equal(response.status, 200);
    assert.equal((await jsonBody(response)).status, 'ok');
  });

  it('answers 405 with an Allow header for a known path and a wrong method', async () => {
    const response = await fetch(new URL('/events', running.url), { method: 'POST' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
    assert.match((await jsonBody(response)).error, /POST/);
  });

  it('logs one line per request when it ends: a stream when its client leaves, with how long it stayed', async () => {
    const logged: Array<Record<string, unknown>> = [];
    const own = await startApp({ logger: (event, fields) => event === 'request' && logged.push(fields!) });
    try {
      await jsonBody(await fetch(new URL('/healthz?probe=1', own.url)));
      const client = new StreamClient(new URL('/stream?channel=logged', own.url));
      await client.live();
      // Held open across another request's whole life: its line waits for the client to leave.
      await jsonBody(await fetch(new URL('/healthz', own.url)));
      await eventually(() => logged.length === 2, 5000, 'the two /healthz lines');
      assert.deepEqual(logged.map(({ path }) => path), ['/healthz', '/healthz']);
      // Not a wait for anything: a stay of known length, which the line's `ms` must cover.
      await new Promise((resolve) => setTimeout(resolve, 20));
      client.abort();
      await eventually(() => logged.length === 3, 5000, 'the stream\'s line');
      const { ms, ...line } = logged[2]!;
      assert.deepEqual(line, { method: 'GET', path: '/stream', status: 200, address: '127.0.0.1', aborted: true });
      assert.ok(typeof ms === 'number' && ms >= 20, `ms: ${String(ms)}`);
      assert.deepEqual(Object.keys(logged[0]!).sort(), ['address', 'method', 'ms', 'path', 'status']);
    } finally {
      await own.close();
    }
  });

  it('on shutdown, tells open streams when to come back and ends them', async () => {
    const own = await startApp({ retryMs: 1234, shutdownTimeoutMs: 2000 });
    const client = new StreamClient(new URL('/events?interval=10000', own.url));
    await client.opened();
    await own.app.shutdown();
    await client.waitForEnd();
    assert.equal(client.decoder.retry, 1234);
    assert.match(client.raw, /retry: 1234\n\n$/);
    assert.equal(own.app.streams.size, 0);
    assert.equal(own.app.server.listening, false);
  });
});
