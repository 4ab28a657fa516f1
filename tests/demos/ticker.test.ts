import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually, startApp, StreamClient } from '../support/harness.ts';

const activeTimers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;

describe('the live ticker', async () => {
  const running = await startApp({ tickMs: 20, heartbeatMs: 0 });
  after(() => running.close());

  it('runs no timer while nobody listens', () => {
    assert.equal(activeTimers(), 0);
    assert.equal(running.app.hub.stats.published, 0);
  });

  it('sends unnamed events with the time and the listener count on channel sse, then stops', async () => {
    const client = new StreamClient(new URL('/stream', running.url));
    const events = await client.waitForEvents(3);
    for (const event of events.slice(0, 3)) {
      assert.equal(event.type, 'message');
      const { time, clients } = JSON.parse(event.data);
      assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000);
      assert.equal(clients, 1);
    }
    client.abort();
    await eventually(() => activeTimers() === 0, 5000, 'the ticker to stop');
  });
});
