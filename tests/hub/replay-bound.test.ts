import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { eventually, startApp, StreamClient } from '../support/harness.ts';

describe('replay respects the backlog bound', async () => {
  const running = await startApp({ maxBacklogBytes: 1024 * 1024 });
  const sockets: Socket[] = [];
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await running.close();
  });

  // 1000 events of 8 KiB: 8 MiB of history, eight times what one client may leave unread.
  const first = running.app.hub.lastId;
  for (let index = 0; index < 1000; index++) {
    await running.app.hub.publish({ channel: 'big', data: `${index} ${'x'.repeat(8 * 1024)}` });
  }

  it('answers an old Last-Event-ID with reset, not the whole history, when the replay passes the bound', async () => {
    const client = new StreamClient(new URL('/stream?channel=big', running.url), { 'Last-Event-ID': String(first) });
    const [reset] = await client.waitForEvents(1);
    assert.equal(reset!.type, 'reset');
    assert.deepEqual(JSON.parse(reset!.data), { reason: 'too-much-to-replay' });
    assert.equal(reset!.lastEventId, String(running.app.hub.lastId));
    client.abort();
  });

  it('still replays in full what fits under the bound', async () => {
    const client = new StreamClient(new URL('/stream?channel=big', running.url), { 'Last-Event-ID': String(running.app.hub.lastId - 10) });
    const events = await client.waitForEvents(10);
    assert.deepEqual(events.map((event) => event.data.split(' ')[0]), ['990', '991', '992', '993', '994', '995', '996', '997', '998', '999']);
    client.abort();
  });

  it('keeps memory bounded when many never-reading sockets ask to replay everything', async () => {
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    const resetsBefore = running.app.hub.stats.resets;
    const growth = () => process.memoryUsage().rss - baseline;
    const limit = 24 * 1024 * 1024;
    for (let index = 0; index < 20; index++) {
      const socket = connect(Number(running.url.port), '127.0.0.1');
      socket.write(`GET /stream?channel=big HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${first}\r\n\r\n`);
      socket.pause(); // never read
      sockets.push(socket);
    }
    // Without the bound, each of the 20 replays is 8 MiB held for a client that never reads.
    await eventually(() => running.app.hub.stats.resets - resetsBefore === 20 || growth() > limit, 10_000, 'every replay to be answered');
    assert.ok(growth() < limit, `RSS grew by ${Math.round(growth() / 1024 / 1024)} MiB`);
    assert.equal(running.app.hub.stats.resets - resetsBefore, 20);
  });
});
