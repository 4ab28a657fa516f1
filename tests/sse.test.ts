import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { formatEvent, SseFormatError } from '../lib/sse/format.ts';
import { StreamRegistry } from '../lib/sse/registry.ts';
import { openStream, type SseStream } from '../lib/sse/stream.ts';
import { eventually, startApp, StreamClient, until } from './harness.ts';
import { SseDecoder } from './sse-decoder.ts';

describe('formatEvent', () => {
  it('writes data as one "data: " line with a blank line after', () => {
    assert.equal(formatEvent({ data: 'hello' }), 'data: hello\n\n');
  });

  it('writes fields in a fixed order: comment, event, id, retry, data', () => {
    assert.equal(
      formatEvent({ data: 'd', retry: 10, id: '7', event: 'tick', comment: 'c' }),
      ': c\nevent: tick\nid: 7\nretry: 10\ndata: d\n\n',
    );
  });

  it('splits data on LF, CRLF and lone CR into one data line each', () => {
    assert.equal(formatEvent({ data: 'a\nb\r\nc\rd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('keeps blank lines inside data as empty data lines', () => {
    assert.equal(formatEvent({ data: 'a\n\nb\n' }), 'data: a\ndata: \ndata: b\ndata: \n\n');
  });

  it('puts exactly one space after the colon, so leading spaces in data survive', () => {
    assert.equal(formatEvent({ data: '  two spaces' }), 'data:   two spaces\n\n');
  });

  it('treats empty strings and zero as values, not absence', () => {
    assert.equal(formatEvent({ data: '' }), 'data: \n\n');
    assert.equal(formatEvent({ id: '' }), 'id: \n\n');
    assert.equal(formatEvent({ retry: 0 }), 'retry: 0\n\n');
    assert.equal(formatEvent({ event: '', data: 'x' }), 'event: \ndata: x\n\n');
  });

  it('splits multi-line comments into one comment line each', () => {
    assert.equal(formatEvent({ comment: 'one\ntwo' }), ': one\n: two\n\n');
  });

  it('refuses line breaks in event, and line breaks or NUL in id', () => {
    for (const event of ['a\nb', 'a\rb', 'a\r\nb']) {
      assert.throws(() => formatEvent({ event, data: 'x' }), SseFormatError);
    }
    for (const id of ['1\n2', '1\r2', '1\0']) {
      assert.throws(() => formatEvent({ id, data: 'x' }), SseFormatError);
    }
  });

  it('refuses a retry that is not a non-negative integer', () => {
    for (const retry of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      assert.throws(() => formatEvent({ retry }), SseFormatError);
    }
  });

  it('refuses a message with no fields at all', () => {
    assert.throws(() => formatEvent({}), SseFormatError);
  });
});

describe('framing round trip through the spec decoder', () => {
  const corpus = [
    'plain',
    '',
    '漢字とかな、한국어',
    'emoji 🎉👩‍👩‍👧 and a flag 🇳🇿',
    'lone\rCR',
    'CRLF\r\nline',
    'trailing newline\n',
    '\n\nleading blank lines',
    'blank\n\n\nlines',
    ' leading space',
    '   several leading spaces',
    ': looks like a comment',
    'data: looks like a field',
    'id: 99\nevent: fake',
    'x'.repeat(256 * 1024),
    '\u2028line separator\u2029paragraph separator',
    'tab\there',
  ];

  for (const data of corpus) {
    it(`round-trips ${JSON.stringify(data.slice(0, 30))}${data.length > 30 ? `… (${data.length} chars)` : ''}`, () => {
      const decoder = new SseDecoder();
      const bytes = Buffer.from(formatEvent({ event: 'e', id: '42', data }));
      // Feed one byte at a time: a decoder must cope with any chunking, including a CRLF or
      // a UTF-8 character split across reads.
      const events = bytes.length < 4096 ? [...bytes].flatMap((byte) => decoder.push(Uint8Array.of(byte))) : decoder.push(bytes);
      // The spec turns every line break into LF, so CR and CRLF come back as LF.
      assert.deepEqual(events, [{ type: 'e', lastEventId: '42', data: data.replace(/\r\n|\r/g, '\n') }]);
    });
  }
});

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

  it('answers with the event-stream headers and flushes them before any event', async () => {
    const client = new StreamClient(new URL('/events?interval=10000', running.url));
    const response = await client.opened();
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(response.headers['cache-control'], 'no-cache');
    assert.equal(response.headers['x-accel-buffering'], 'no');
    assert.equal(response.headers['connection'], 'keep-alive');
    assert.equal(response.headers['content-length'], undefined);
    assert.equal(response.headers['content-encoding'], undefined);
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
    while (!stream.closed) {
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

describe('property: any text survives framing and the spec decoder', () => {
  /** A small seeded generator, so a failure can be replayed exactly. */
  function random(seed: number) {
    let state = seed >>> 0 || 1;
    return (below: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % below;
    };
  }
  // Characters chosen to hit every rule: line breaks, colons, spaces, NUL, BOM, astral planes.
  const alphabet = ['a', 'Z', ' ', ':', '\r', '\n', '\r\n', '\t', '\0', '\uFEFF', 'é', '中', '🎉', '\u2028', 'data:', 'id:'];
  const randomText = (next: (below: number) => number, max: number) => {
    let text = '';
    const length = next(max);
    for (let index = 0; index < length; index++) {
      text += next(4) === 0 ? String.fromCodePoint(next(0xd7ff) + 1) : alphabet[next(alphabet.length)]!;
    }
    return text;
  };

  it('round-trips 2000 random events, modulo CR and CRLF becoming LF', () => {
    const seed = Number(process.env['PROPERTY_SEED'] ?? 20261122);
    const next = random(seed);
    for (let round = 0; round < 2000; round++) {
      const data = randomText(next, 40);
      const event = randomText(next, 8).replace(/[\r\n]/g, '') || 'x';
      const id = randomText(next, 8).replace(/[\r\n\0]/g, '');
      const decoder = new SseDecoder();
      const bytes = Buffer.from(formatEvent({ event, id, data }));
      // Split the bytes at a random point: decoders must not care where reads end.
      const cut = next(bytes.length + 1);
      const events = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
      assert.deepEqual(
        events,
        [{ type: event, lastEventId: id, data: data.replace(/\r\n|\r/g, '\n') }],
        `seed ${seed}, round ${round}: ${JSON.stringify({ event, id, data })}`,
      );
    }
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
