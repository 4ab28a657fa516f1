import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jsonBody, startApp, type Running } from '../support/harness.ts';

/** A JSON body of about `bytes` bytes: the fields the route needs, padded with one it ignores. */
function padded(fields: Record<string, unknown>, bytes: number): string {
  const bare = JSON.stringify({ ...fields, pad: '' });
  return JSON.stringify({ ...fields, pad: 'x'.repeat(bytes - bare.length) });
}

describe('MAX_BODY_BYTES', () => {
  let running: Running;
  const limit = 2048;
  before(async () => {
    running = await startApp({ maxBodyBytes: limit });
  });
  after(() => running.close());

  const post = (path: string, body: string) =>
    fetch(new URL(path, running.url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

  it('is the one limit on every route that reads a body: just under it is accepted, just over it is 413', async () => {
    const created = await post('/orders', padded({ item: 'A book' }, limit - 10));
    assert.equal(created.status, 201);
    const { order } = await jsonBody(created);
    const routes: Array<[string, Record<string, unknown>]> = [
      ['/publish', { channel: 'limits', data: 'hello' }],
      ['/messages', { channel: 'limits', message: 'hello' }],
      ['/orders', { item: 'A book' }],
      [`/orders/${order.id}/status`, { status: 'paid' }],
    ];
    for (const [path, fields] of routes) {
      const under = await post(path, padded(fields, limit - 10));
      assert.ok(under.status >= 200 && under.status < 300, `${path} under the limit: ${under.status}`);
      const over = await post(path, padded(fields, limit + 10));
      assert.equal(over.status, 413, `${path} over the limit`);
      assert.match((await jsonBody(over)).error, new RegExp(`larger than ${limit} bytes`));
    }
  });
});
