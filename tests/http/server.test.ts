import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { jsonBody, startApp, StreamClient } from '../support/harness.ts';

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
