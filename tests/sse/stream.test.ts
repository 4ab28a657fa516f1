import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { formatEvent } from '../../lib/sse/format.ts';
import { StreamRegistry } from '../../lib/sse/registry.ts';
import { openStream, type SseStream } from '../../lib/sse/stream.ts';
import { assertStreamHeaders, collectGarbage, eventually, startApp, StreamClient, until } from '../support/harness.ts';
import { SseDecoder } from '../support/sse-decoder.ts';

/**
 * Buffer memory once collections stop freeing more: buffers are freed by a background sweeper
 * after each collection, so read again (bounded) until two readings agree within 256 KiB.
 */
async function settledMemory(): Promise<number> {
  let previous = Infinity;
  let current = Infinity;
  await eventually(() => {
    collectGarbage();
    [previous, current] = [current, process.memoryUsage().arrayBuffers];
    return Math.abs(previous - current) < 256 * 1024;
  }, 10_000, 'memory to settle');
  return current;
}

/** A bare server that opens a stream and hands it to the test: SseStream on a real port. */
async function streamServer(registry: StreamRegistry, maxBacklogBytes: number) {
  const opened: SseStream[] = [];
  const server: Server = createServer((req, res) => {
    opened.push(openStream(registry, req, res, { retryMs: 1500, maxBacklogBytes }));
    server.emit('stream');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { server, opened, url: `http://127.0.0.1:${port}/` };
}

describe('event streams over a real port', async () => {
  const running = await startApp({ heartbeatMs: 50 });
  after(() => running.close());

  it('answers HEAD on a stream route with the stream headers and no body, and releases the stream at once', async () => {
    for (const path of ['/events', '/stream?channel=head']) {
      const response = await fetch(new URL(path, running.url), { method: 'HEAD' });
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(await response.text(), '');
    }
    await eventually(() => running.app.streams.size === 0, 5000, 'HEAD streams released');
  });

  it('answers with the event-stream headers and flushes them before any event', async () => {
    const client = new StreamClient(new URL('/events?interval=10000', running.url));
    const response = await client.opened();
    assertStreamHeaders(response);
    // The headers came while the first sentence is still ten seconds away: `open` fires now.
    assert.equal(client.events.length, 0);
    await until(client, 'change', () => client.raw.length > 0);
    assert.equal(client.raw.startsWith('retry: 3000\n\n'), true);
    client.abort();
  });

  it('sends a heartbeat comment on an idle stream', async () => {
    const client = new StreamClient(new URL('/events?interval=10000', running.url));
    await until(client, 'change', () => client.decoder.comments.length > 0);
    assert.equal(client.decoder.comments[0], ' heartbeat');
    // Heartbeats sit between frames: nothing was dispatched by them.
    assert.equal(client.events.length, 0);
    client.abort();
  });

  it('releases every stream and the heartbeat timer after abrupt client aborts', async () => {
    await eventually(() => running.app.streams.size === 0, 5000, 'earlier streams to close');
    const clients = Array.from({ length: 50 }, () => new StreamClient(new URL('/events?interval=10000', running.url)));
    await Promise.all(clients.map((client) => client.opened()));
    assert.equal(running.app.streams.size, 50);
    assert.equal(running.app.streams.heartbeatRunning, true);
    for (const client of clients) client.abort();
    await eventually(() => running.app.streams.size === 0, 5000, 'streams to close');
    assert.equal(running.app.streams.heartbeatRunning, false);
    assert.equal(running.app.streams.closed.client >= 50, true);
    // Each stream's sentence timer went with it: none fires into a closed stream.
    const timers = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    assert.equal(timers, 0);
  });

  it('sends every stream its heartbeat in slices, with a turn of the event loop between them', async () => {
    const registry = new StreamRegistry({ heartbeatMs: 50, streamsPerSlice: 2 });
    const { server, url, opened } = await streamServer(registry, 1024 * 1024);
    // Counts turns of the event loop: an immediate that queues itself runs once per turn.
    let turn = 0;
    let counter = setImmediate(function count() {
      turn += 1;
      counter = setImmediate(count);
    });
    const clients = Array.from({ length: 5 }, () => new StreamClient(new URL(url)));
    try {
      await Promise.all(clients.map((client) => client.opened()));
      // From here on, each stream only writes heartbeats; note the turn each one is written in.
      const heartbeatsPerTurn = new Map<number, number>();
      for (const stream of opened) {
        const write = stream.write.bind(stream);
        stream.write = (frames) => {
          heartbeatsPerTurn.set(turn, (heartbeatsPerTurn.get(turn) ?? 0) + 1);
          return write(frames);
        };
      }
      await Promise.all(clients.map((client) => until(client, 'change', () => client.decoder.comments.length > 0)));
      assert.deepEqual(clients.map((client) => client.decoder.comments[0]), Array(5).fill(' heartbeat'));
      assert.ok(Math.max(...heartbeatsPerTurn.values()) <= 2, `heartbeats per turn: ${JSON.stringify([...heartbeatsPerTurn])}`);
    } finally {
      clearImmediate(counter);
      for (const client of clients) client.abort();
      server.closeAllConnections();
      server.close();
    }
  });

  it('writes shared buffers interleaved across streams byte for byte, each framed as its own chunk', async () => {
    // Shared buffers are framed once and the chunk reused (lib/sse/preframed-write.ts): a chunk
    // handed to the wrong buffer would corrupt the body or break the chunked encoding.
    const registry = new StreamRegistry({ heartbeatMs: 0 });
    const { server, url, opened } = await streamServer(registry, 1024 * 1024);
    const clients = [new StreamClient(new URL(url)), new StreamClient(new URL(url))];
    try {
      await Promise.all(clients.map((client) => client.opened()));
      const [first, second] = opened as [SseStream, SseStream];
      const a = Buffer.from(formatEvent({ id: '1', data: 'one' }));
      const b = Buffer.from(formatEvent({ id: '2', data: 'two, a longer one' }));
      first.write(a);
      second.write(a);
      first.write(b);
      second.write(a);
      second.write(b);
      first.write(formatEvent({ data: 'only for the first' }));
      // Nothing to write: framed as a chunk of length 0, it would end the body.
      first.write(Buffer.alloc(0));
      second.write('');
      first.write(a);
      const expected = [
        `retry: 1500\n\n${a}${b}data: only for the first\n\n${a}`,
        `retry: 1500\n\n${a}${a}${b}`,
      ];
      await Promise.all(clients.map((client, i) => until(client, 'change', () => client.raw.length >= expected[i]!.length)));
      assert.deepEqual(clients.map((client) => client.raw), expected);
    } finally {
      for (const client of clients) client.abort();
      server.closeAllConnections();
      server.close();
    }
  });

  it('keeps no copy of a shared buffer once written: what the caller holds is all that stays', async () => {
    // History holds each event's frame for a long time; the framing cache of
    // lib/sse/preframed-write.ts must not keep a chunk beside every one of them, a copy of each
    // that history's byte budget does not count. 32 frames of 1 MiB are held here and each written once.
    const registry = new StreamRegistry({ heartbeatMs: 0 });
    const { server, url, opened } = await streamServer(registry, 64 * 1024 * 1024);
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    try {
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await once(socket, 'data');
      socket.on('data', () => {}); // reads and drops, so the test keeps nothing it is sent
      const stream = opened[0]!;
      const before = await settledMemory();
      const held = Array.from({ length: 32 }, (_, index) => Buffer.from(formatEvent({ id: String(index), data: 'x'.repeat(1024 * 1024) })));
      for (const frame of held) stream.write(frame);
      await eventually(() => stream.backlogBytes === 0, 10_000, 'every frame sent');
      const growth = (await settledMemory()) - before;
      const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
      assert.ok(growth < 1.5 * 32 * 1024 * 1024, `memory grew by ${mib(growth)} for 32 MiB of frames held`);
      assert.equal(held.length, 32); // keeps the frames alive until the reading above
    } finally {
      socket.destroy();
      server.closeAllConnections();
      server.close();
    }
  });

  it('disconnects a client that never reads, keeping its backlog bounded', async () => {
    const registry = new StreamRegistry({ heartbeatMs: 0 });
    const bound = 256 * 1024;
    const { server, opened, url } = await streamServer(registry, bound);
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    socket.pause(); // never read: the kernel buffers fill, then our backlog grows.
    await once(server, 'stream');
    const stream = opened[0]!;
    const frame = formatEvent({ data: 'x'.repeat(64 * 1024) });
    let maxBacklog = 0;
    let writes = 0;
    while (!stream.closed) {
      // Far more than the bound needs: if the stream is never cut, fail instead of hanging.
      assert.ok(++writes < 10_000, 'the stream was never cut at its backlog bound');
      stream.write(frame);
      maxBacklog = Math.max(maxBacklog, stream.backlogBytes);
      // Give the socket a turn so the kernel takes what it will.
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(registry.closed.slow, 1);
    assert.equal(registry.size, 0);
    assert.ok(maxBacklog <= bound + frame.length + 1024, `backlog reached ${maxBacklog} bytes`);
    socket.destroy();
    server.close();
  });
});

describe('making a stream', () => {
  it('is only possible through openStream, which puts the headers on the socket before any frame', async () => {
    // A stream built by hand after a bare writeHead sent its first frame before the status
    // line: writes may go straight to the socket (lib/sse/preframed-write.ts).
    const module: Record<string, unknown> = await import('../../lib/sse/stream.ts');
    assert.equal(typeof module['openStream'], 'function');
    assert.equal('SseStream' in module, false);
  });
});

describe('streams behind a pipelined request', () => {
  it('keeps the answers in order when a stream is requested behind another request on one connection', async () => {
    const running = await startApp();
    const socket = connect(Number(running.url.port), '127.0.0.1');
    // Both requests in one write. The first answers after a delay, so the stream opens and
    // starts writing while its answer must still wait its turn.
    socket.write('GET /demo/flaky HTTP/1.1\r\nHost: x\r\n\r\nGET /events?interval=10 HTTP/1.1\r\nHost: x\r\n\r\n');
    let text = '';
    for await (const chunk of socket) {
      text += String(chunk);
      if (text.includes('event: end')) break;
    }
    socket.destroy();
    const second = text.indexOf('HTTP/1.1 200 OK', 1);
    assert.ok(/^HTTP\/1.1 (200|503)/.test(text) && second > 0, text.slice(0, 200));
    assert.match(text.slice(0, second), /"ok":true|"error"/);
    const decoder = new SseDecoder();
    // De-chunk the stream's body: size lines, then data.
    let body = text.slice(text.indexOf('\r\n\r\n', second) + 4);
    let plain = '';
    while (body.length > 0) {
      const lineEnd = body.indexOf('\r\n');
      const size = Number.parseInt(body.slice(0, lineEnd), 16);
      if (!(size > 0)) break;
      plain += body.slice(lineEnd + 2, lineEnd + 2 + size);
      body = body.slice(lineEnd + 2 + size + 2);
    }
    const events = decoder.push(plain);
    assert.deepEqual(events.map((event) => event.lastEventId), ['1', '2', '3', '4', '5', '5']);
    await running.close();
  });
});
