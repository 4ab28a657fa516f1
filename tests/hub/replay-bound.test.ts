import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { AppOptions } from '../../server.ts';
import { eventually, startApp, StreamClient } from '../support/harness.ts';

/**
 * An app whose `channel` holds `count` events of `size` bytes (data `<index> xxx…`), with the
 * id before the first, and a list for the sockets a test opens: all closed after the suite.
 */
async function appWithHistory(options: AppOptions, channel: string, count: number, size: number) {
  const running = await startApp(options);
  const sockets: Socket[] = [];
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await running.close();
  });
  const first = running.app.hub.lastId;
  for (let index = 0; index < count; index++) {
    await running.app.hub.publish({ channel, data: `${index} ${'x'.repeat(size)}` });
  }
  return { running, sockets, first };
}

describe('replay respects the backlog bound', async () => {
  // 1000 events of 8 KiB: 8 MiB of history, eight times what one client may leave unread.
  const { running, sockets, first } = await appWithHistory({ maxBacklogBytes: 1024 * 1024 }, 'big', 1000, 8 * 1024);

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

describe('a new stream whose replay nearly fills the backlog bound', async () => {
  const running = await startApp({ maxBacklogBytes: 1024 });
  after(() => running.close());

  it('is not cut as slow for the bytes its own opening holds back (headers, replay) before they are sent', async () => {
    const from = running.app.hub.lastId;
    // About 910 bytes of replay: with the headers, more than the 1 KiB bound, but never unread.
    await running.app.hub.publish({ channel: 'near', data: 'x'.repeat(880) });
    // Two publishes in the same turn as the request, as when POSTs and the GET are read
    // together: one whose fan-out slice is queued before the new stream's uncork (its event is
    // in the replay too), and one that lands after the replay was read, so that slice writes
    // it live while the stream's opening bytes are still held back.
    const onRequest = (req: { url?: string }) => {
      if (!req.url?.startsWith('/stream')) return;
      setImmediate(() => void running.app.hub.publish({ channel: 'near', data: 'live after the replay' }));
      void running.app.hub.publish({ channel: 'near', data: 'in the replay' });
    };
    running.app.server.prependListener('request', onRequest);
    const socket = connect(Number(running.url.port), '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.write(`GET /stream?channel=near HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${from}\r\n\r\n`);
    const closed = new Promise<never>((_, reject) => socket.once('close', () => reject(new Error(`stream cut after ${received.length} bytes`))));
    const arrived = (async () => {
      while (!received.includes('data: live after the replay')) await once(socket, 'data', { signal: AbortSignal.timeout(5000) });
    })();
    try {
      await Promise.race([arrived, closed]);
    } finally {
      running.app.server.off('request', onRequest);
      socket.destroy();
    }
    assert.match(received, /^HTTP\/1\.1 200 /);
    assert.ok(received.includes('data: in the replay'));
    assert.equal(running.app.streams.closed.slow, 0);
  });
});

describe('replays waiting for their sockets share one bound', async () => {
  // Each replay may be 32 MiB (the backlog bound); all of them together may hold what history
  // does: 24 MiB, which keeps the 60 events of 128 KiB below (each counts twice, bytes and
  // text), so three replays of them fit together and a fourth does not.
  const limits = { maxBacklogBytes: 32 * 1024 * 1024, historyMaxBytes: 24 * 1024 * 1024 };
  const { running, sockets, first } = await appWithHistory(limits, 'shared', 60, 128 * 1024);
  const oldest = running.app.hub.lastId - 59;
  assert.ok(oldest > first);

  /** A client that asks for everything since `oldest - 1`, reads the start of its replay, then never reads again. */
  async function neverReading(): Promise<void> {
    const socket = connect(Number(running.url.port), '127.0.0.1');
    sockets.push(socket);
    socket.write(`GET /stream?channel=shared HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${oldest - 1}\r\n\r\n`);
    let bytes = 0;
    while (bytes < 256 * 1024) {
      const [chunk] = (await once(socket, 'data', { signal: AbortSignal.timeout(5000) })) as [Buffer];
      bytes += chunk.length;
    }
    socket.pause();
  }

  it('resets a replay with "busy" while others wait for clients that do not read, and replays again once they are gone', async () => {
    // Replays of 7.5 MiB each: far more than the kernel takes for a reader that stops.
    for (let index = 0; index < 3; index++) await neverReading();
    const busy = new StreamClient(new URL('/stream?channel=shared', running.url), { 'Last-Event-ID': String(oldest - 1) });
    const [reset] = await busy.waitForEvents(1);
    busy.abort();
    assert.equal(reset!.type, 'reset');
    assert.deepEqual(JSON.parse(reset!.data), { reason: 'busy' });

    for (const socket of sockets.splice(0)) socket.destroy();
    await eventually(() => running.app.hub.subscriberCount === 0, 5000, 'the never-reading streams to close');
    const replayed = new StreamClient(new URL('/stream?channel=shared', running.url), { 'Last-Event-ID': String(oldest - 1) });
    const events = await replayed.waitForEvents(60);
    replayed.abort();
    assert.deepEqual(events.map((event) => event.data.split(' ')[0]), Array.from({ length: 60 }, (_, index) => String(index)));
  });
});

describe('a replay its client has read no longer counts against the shared bound', async () => {
  // 10 events of 100 KiB: about 2 MiB of history counted (bytes and text) under a 3 MiB bound,
  // so two replays of them waiting at once would already be one too many.
  const { running, first } = await appWithHistory({ maxBacklogBytes: 4 * 1024 * 1024, historyMaxBytes: 3 * 1024 * 1024 }, 'read', 10, 100 * 1024);

  it('lets one reader after another replay in full while the earlier ones stay connected', async () => {
    const clients: StreamClient[] = [];
    try {
      for (let index = 0; index < 4; index++) {
        const client = new StreamClient(new URL('/stream?channel=read', running.url), { 'Last-Event-ID': String(first) });
        clients.push(client);
        const events = await client.waitForEvents(10);
        assert.equal(events[0]!.type, 'message', `reader ${index}: ${events[0]!.data.slice(0, 40)}`);
        // Read in full, so its socket took it all: nothing of it is waiting any more.
        await eventually(() => running.app.hub.replayBytesWaiting === 0, 5000, `reader ${index}'s replay to stop counting`);
      }
    } finally {
      for (const client of clients) client.abort();
    }
  });
});
