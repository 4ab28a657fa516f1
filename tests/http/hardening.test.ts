import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { eventually, jsonBody, startApp, StreamClient } from '../support/harness.ts';

/** Sends raw bytes and collects the whole answer until the server closes (or `ms` passes). */
async function rawExchange(port: number, bytes: string | Buffer, ms = 5000): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write(bytes);
  let text = '';
  const signal = AbortSignal.timeout(ms);
  signal.addEventListener('abort', () => socket.destroy());
  for await (const chunk of socket) text += String(chunk);
  if (signal.aborted) throw new Error(`No answer within ${ms} ms to ${String(bytes).slice(0, 60)}`);
  return text;
}

const statusOf = (answer: string) => Number(answer.split(' ')[1]);
const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string };

describe('bad input gets a 4xx JSON error, and breaks nothing', async () => {
  const running = await startApp({ maxBodyBytes: 4096 });
  after(() => running.close());
  const port = Number(running.url.port);
  const request = (method: string, path: string, headers: Record<string, string>, body = '') =>
    `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('')}${body ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`;
  const json = { 'Content-Type': 'application/json' };

  it('answers every case of the battery with a 4xx JSON error in bounded time', async () => {
    // Publish one event first: it must still be replayable after the battery.
    const before = await jsonBody(
      await fetch(new URL('/publish', running.url), { method: 'POST', headers: json, body: JSON.stringify({ channel: 'keep', data: 'kept' }) }),
    );
    const battery: Array<[string, string | Buffer]> = [
      ['malformed JSON', request('POST', '/publish', json, '{"channel": ')],
      ['JSON that is not an object', request('POST', '/publish', json, '"just a string"')],
      ['invalid UTF-8', request('POST', '/publish', json, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'))],
      ['oversized body', request('POST', '/publish', json, JSON.stringify({ channel: 'a', data: 'x'.repeat(5000) }))],
      [
        'oversized chunked body',
        `POST /publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${'1000\r\n' + 'x'.repeat(4096) + '\r\n'}${'1000\r\n' + 'x'.repeat(4096) + '\r\n'}0\r\n\r\n`,
      ],
      ['wrong content type', request('POST', '/publish', { 'Content-Type': 'text/plain' }, 'hello')],
      ['no content type', request('POST', '/messages', {}, 'channel=a&message=b')],
      ['bad channel name', request('POST', '/publish', json, JSON.stringify({ channel: '../etc', data: 'x' }))],
      ['LF in event', request('POST', '/publish', json, JSON.stringify({ channel: 'a', event: 'x\ny', data: 'x' }))],
      ['CR in event', request('POST', '/publish', json, JSON.stringify({ channel: 'a', event: 'x\ry', data: 'x' }))],
      ['LF in channel', request('POST', '/publish', json, JSON.stringify({ channel: 'a\nb', data: 'x' }))],
      ['NUL in channel', request('POST', '/messages', json, JSON.stringify({ channel: 'a\u0000', message: 'x' }))],
      ['CR in order status', request('POST', '/orders/x/status', json, JSON.stringify({ status: 'paid\r' }))],
      ['bad Last-Event-ID on /stream', request('GET', '/stream', { 'Last-Event-ID': 'abc' })],
      ['NUL in Last-Event-ID', request('GET', '/stream', { 'Last-Event-ID': '12\u000034' })],
      ['bad Last-Event-ID on /events', request('GET', '/events', { 'Last-Event-ID': '1; DROP TABLE' })],
      ['bad Last-Event-ID on /order_monitor', request('GET', '/order_monitor', { 'Last-Event-ID': '-5' })],
      ['bad channel on /stream', request('GET', '/stream?channel=%0d%0aevent:%20x', {})],
      ['traversal', request('GET', '/%2e%2e/%2e%2e/etc/passwd', {})],
      ['encoded traversal in a route parameter', request('GET', '/orders/%E0%A4%A', {})],
      ['huge headers', request('GET', '/healthz', { 'X-Big': 'x'.repeat(20_000) })],
      ['unknown method', request('BREW', '/', {})],
      ['method not allowed', request('DELETE', '/stream', {})],
      ['garbage instead of HTTP', 'this is not http\r\n\r\n'],
      ['a request target that is not a URL', request('GET', 'http://[bad/', {})],
    ];
    for (const [name, bytes] of battery) {
      const answer = await rawExchange(port, bytes);
      const status = statusOf(answer);
      assert.ok(status >= 400 && status < 500, `${name}: answered ${status}`);
      assert.equal(typeof bodyOf(answer).error, 'string', `${name}: no JSON error`);
      assert.doesNotMatch(answer, /at .*\.ts:\d+|node:internal/, `${name}: leaked a stack trace`);
    }
    // Still serving, and what was accepted before is still there.
    assert.equal((await fetch(new URL('/healthz', running.url))).status, 200);
    const client = new StreamClient(new URL(`/stream?channel=keep&lastEventId=${Number(before.id) - 1}`, running.url));
    assert.equal((await client.waitForEvents(1))[0]!.data, 'kept');
    client.abort();
  });
});

describe('limits', () => {
  it('caps streams per address with 429 and in total with 503, both with Retry-After', async () => {
    const running = await startApp({ maxStreams: 3, maxStreamsPerAddress: 2 });
    const stream = () => new StreamClient(new URL('/stream', running.url));
    const [a, b] = [stream(), stream()];
    await Promise.all([a.opened(), b.opened()]);
    const third = await fetch(new URL('/stream', running.url));
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '10');
    assert.match((await jsonBody(third)).error, /your address/);
    a.abort();
    await eventually(() => running.app.streams.size === 1, 5000, 'the aborted stream to go');
    const again = stream();
    assert.equal((await again.opened()).statusCode, 200);
    again.abort();
    b.abort();
    await running.close();

    const small = await startApp({ maxStreams: 1 });
    const only = new StreamClient(new URL('/stream', small.url));
    await only.opened();
    const refused = await fetch(new URL('/events', small.url));
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '10');
    only.abort();
    await small.close();
  });

  it('rate limits chat messages per address with 429 and Retry-After', async () => {
    const running = await startApp({ postsPerMinute: 3 });
    const send = () =>
      fetch(new URL('/messages', running.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'c', message: 'hi' }),
      });
    for (let index = 0; index < 3; index++) assert.equal((await send()).status, 202);
    const limited = await send();
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.match((await jsonBody(limited)).error, /at most 3 a minute/);
    await running.close();
  });

  it('times out a slowloris request without cutting a live stream', async () => {
    const running = await startApp({ headersTimeoutMs: 300, requestTimeoutMs: 600, heartbeatMs: 100 });
    const stream = new StreamClient(new URL('/stream', running.url));
    await stream.opened();
    // Headers that never finish: one byte now and then, never the blank line.
    const socket: Socket = connect(Number(running.url.port), '127.0.0.1');
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.write('X-a: b\r\n'), 50);
    let answer = '';
    for await (const chunk of socket) answer += String(chunk);
    clearInterval(drip);
    assert.equal(statusOf(answer), 408);
    // The stream outlived both timeouts, and still has heartbeats flowing.
    const heartbeats = stream.decoder.comments.length;
    await eventually(() => stream.decoder.comments.length > heartbeats, 5000, 'another heartbeat');
    assert.equal(stream.ended, false);
    stream.abort();
    await running.close();
  });

  it('cuts a client whose backlog stops draining (stalled), even under the backlog bound', async () => {
    const running = await startApp({ heartbeatMs: 50, maxBacklogBytes: 512 * 1024 * 1024 });
    const socket = connect(Number(running.url.port), '127.0.0.1');
    socket.write('GET /stream?channel=stall HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.pause();
    await eventually(() => running.app.hub.subscriberCount === 1, 5000, 'the subscriber');
    // More than the kernel's socket buffers take, so writes queue in the process.
    for (let index = 0; index < 64; index++) running.app.hub.publish({ channel: 'stall', data: 'z'.repeat(256 * 1024) });
    await eventually(() => running.app.streams.closed.stalled === 1, 10_000, 'the stalled client to be cut');
    assert.equal(running.app.streams.size, 0);
    socket.destroy();
    await running.close();
  });

  it('survives thousands of abrupt aborts with every count back to zero', async () => {
    const running = await startApp();
    for (let round = 0; round < 4; round++) {
      const sockets = Array.from({ length: 500 }, (_, index) => {
        const socket = connect(Number(running.url.port), '127.0.0.1');
        socket.on('error', () => {});
        socket.write(`GET /stream?channel=abort${index % 5} HTTP/1.1\r\nHost: x\r\n\r\n`);
        return socket;
      });
      await eventually(() => running.app.streams.size === 500, 10_000, 'all 500 streams');
      for (const socket of sockets) socket.resetAndDestroy();
      await eventually(() => running.app.streams.size === 0 && running.app.hub.subscriberCount === 0, 10_000, 'all to close');
    }
    assert.equal(running.app.streams.heartbeatRunning, false);
    assert.equal((await fetch(new URL('/healthz', running.url))).status, 200);
    await running.close();
  });
});

describe('CORS', async () => {
  const running = await startApp({ allowedOrigins: ['https://app.example'] });
  after(() => running.close());

  it('lets an allowed origin read streams with credentials, naming it exactly', async () => {
    const client = new StreamClient(new URL('/stream', running.url), { Origin: 'https://app.example' });
    const response = await client.opened();
    assert.equal(response.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(response.headers['access-control-allow-credentials'], 'true');
    assert.equal(response.headers['vary'], 'Origin');
    client.abort();
  });

  it('gives other origins no CORS headers, and refuses their preflight', async () => {
    const response = await fetch(new URL('/healthz', running.url), { headers: { Origin: 'https://evil.example' } });
    assert.equal(response.headers.get('access-control-allow-origin'), null);
    const preflight = await fetch(new URL('/publish', running.url), { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
    assert.equal(preflight.status, 403);
  });

  it('answers an allowed preflight with the methods and headers it may use', async () => {
    const preflight = await fetch(new URL('/messages', running.url), {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers')!, /Content-Type/);
    assert.match(preflight.headers.get('access-control-allow-methods')!, /POST/);
  });

  it('never combines a wildcard with credentials', async () => {
    const open = await startApp({ allowedOrigins: ['*'] });
    const response = await fetch(new URL('/healthz', open.url), { headers: { Origin: 'https://anyone.example' } });
    assert.equal(response.headers.get('access-control-allow-origin'), '*');
    assert.equal(response.headers.get('access-control-allow-credentials'), null);
    await open.close();
  });
});

describe('behind a reverse proxy', () => {
  it('with TRUST_PROXY, limits by the address the proxy appended, not by what the client claims', async () => {
    const running = await startApp({ trustProxy: true, postsPerMinute: 1 });
    const send = (forwardedFor: string) =>
      fetch(new URL('/messages', running.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': forwardedFor },
        body: JSON.stringify({ channel: 'c', message: 'hi' }),
      });
    assert.equal((await send('1.1.1.1, 203.0.113.5')).status, 202);
    // A different spoofed first entry does not buy a fresh allowance.
    assert.equal((await send('9.9.9.9, 203.0.113.5')).status, 429);
    assert.equal((await send('203.0.113.6')).status, 202);
    // And a forwarded client is not loopback, so it cannot publish without a key.
    const publish = await fetch(new URL('/publish', running.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': '203.0.113.5' },
      body: JSON.stringify({ channel: 'c', data: 'x' }),
    });
    assert.equal(publish.status, 403);
    await running.close();
  });
});

describe('pipelined and broken connections', () => {
  it('hangs up on requests pipelined behind an open stream, which no answer could reach, and releases everything', async () => {
    // Heartbeats off: no failed write would ever notice a client gone behind a paused socket.
    const running = await startApp({ heartbeatMs: 0 });
    const socket = connect(Number(running.url.port), '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => (text += String(chunk)));
    // A hundred streams pipelined on one connection: all but the first would wait for ever.
    socket.write('GET /stream?channel=p HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(100));
    await once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    assert.ok(text.split('HTTP/1.1 ').length - 1 <= 1, `one answer at most, the first stream's: ${text.slice(0, 200)}`);
    await eventually(() => running.app.streams.size === 0 && running.app.hub.subscriberCount === 0, 5000, 'every stream to be released');
    // The address is not left holding stream slots: a new stream opens at once.
    const client = new StreamClient(new URL('/stream?channel=p', running.url));
    await client.opened();
    client.abort();
    await running.close();
  });

  it('hangs up on requests pipelined behind a stream whose route looks something up before opening it', async () => {
    const running = await startApp({ heartbeatMs: 0, courierMs: 0 });
    after(() => running.close());
    const created = await fetch(new URL('/orders', running.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ item: 'Teapot' }),
    });
    const { watch } = (await jsonBody(created)) as unknown as { watch: string };
    const socket = connect(Number(running.url.port), '127.0.0.1');
    // /order_monitor awaits the order before opening: every copy has arrived by then.
    socket.write(`GET ${watch} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(20));
    socket.resume();
    await once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    await eventually(() => running.app.streams.size === 0, 5000, 'no stream left open');
  });

  it('never writes an answer of its own into one under way: CONNECT, an unmeetable Expect, or garbage behind another request', async () => {
    const running = await startApp();
    after(() => running.close());
    const port = Number(running.url.port);
    const behindStream = [
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: foo\r\n\r\n{}',
    ];
    for (const second of behindStream) {
      const answer = await rawExchange(port, `GET /stream HTTP/1.1\r\nHost: x\r\n\r\n${second}`);
      assert.ok(answer.split('HTTP/1.1 ').length - 1 <= 1, `a second answer inside the stream: ${answer.slice(0, 400)}`);
    }
    // A publish whose body has arrived is being handled when garbage follows: its answer is
    // the 202 or nothing, never a 400 that would make its sender publish again.
    const body = JSON.stringify({ channel: 'g', data: 'once' });
    const answer = await rawExchange(
      port,
      `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}this is not http\r\n\r\n`,
    );
    assert.doesNotMatch(answer, /HTTP\/1\.1 400/);
  });

  it('answers a request pipelined behind a stream that has already ended (HEAD)', async () => {
    const running = await startApp();
    after(() => running.close());
    const answer = await rawExchange(
      Number(running.url.port),
      'HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 200 OK[\s\S]*text\/event-stream[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"status":"ok"/);
  });

  it('hangs up, rather than writing an error into a stream, when garbage follows a stream request', async () => {
    const running = await startApp();
    const socket = connect(Number(running.url.port), '127.0.0.1');
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
    let text = '';
    socket.on('data', (chunk) => {
      text += String(chunk);
      // Once the stream has begun, send something that is not HTTP on the same connection.
      if (text.includes('retry:') && !socket.destroyed) socket.write('this is not http\r\n\r\n');
    });
    await once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    assert.match(text, /^HTTP\/1.1 200 OK/);
    assert.doesNotMatch(text.slice(1), /HTTP\/1.1 400/);
    await eventually(() => running.app.streams.size === 0, 5000, 'the stream to be released');
    await running.close();
  });

  it('answers in JSON what Node would refuse with an empty body, or none: no Host, an Expect it cannot meet, CONNECT', async () => {
    const running = await startApp();
    after(() => running.close());
    const port = Number(running.url.port);
    const cases = [
      ['GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', 400, /Host/],
      ['POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: foo\r\n\r\n{}', 417, /Expect/],
      ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405, /CONNECT/],
    ] as const;
    for (const [bytes, status, message] of cases) {
      const answer = await rawExchange(port, bytes);
      assert.equal(statusOf(answer), status, answer);
      assert.match(answer, /Content-Type: application\/json/i);
      assert.match(bodyOf(answer).error, message);
    }
    // HTTP/1.0 needs no Host.
    assert.equal(statusOf(await rawExchange(port, 'GET /healthz HTTP/1.0\r\n\r\n')), 200);
  });

  it('answers a broken request on a kept-alive connection whose earlier answer has finished', async () => {
    const running = await startApp();
    after(() => running.close());
    // Browsers and HTTP clients reuse connections: the second request must not get a bare reset.
    for (const [broken, status] of [
      ['this is not http\r\n\r\n', 400],
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ] as const) {
      const answer = await rawExchange(Number(running.url.port), `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n${broken}`);
      const second = answer.indexOf('HTTP/1.1', 1);
      assert.match(answer, /^HTTP\/1\.1 200 OK/);
      assert.ok(second > 0, `no second answer after the first: ${answer.slice(0, 300)}`);
      assert.equal(statusOf(answer.slice(second)), status);
      assert.match(bodyOf(answer.slice(second)).error, /./);
    }
  });
});

describe('refused and abandoned request bodies', () => {
  it('lets a client that sends a large body at once read the 413, instead of a connection reset', async () => {
    const running = await startApp({ maxBodyBytes: 4096 });
    const port = Number(running.url.port);
    const big = Buffer.alloc(4 * 1024 * 1024, 'x');
    const heads = [
      `POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`,
      `POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${big.length}\r\n\r\n`,
      // Chunked: the limit is found while reading, not from a declared length.
      `POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n`,
    ];
    for (const [index, head] of heads.entries()) {
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      let failure: Error | undefined;
      socket.on('data', (chunk) => (answer += String(chunk)));
      socket.on('error', (error) => (failure = error));
      socket.write(head);
      socket.write(big);
      if (head.includes('chunked')) socket.write('\r\n0\r\n\r\n');
      // Then, on the same connection where it is still open, an ordinary request.
      socket.end(head.includes('Connection: close') ? '' : 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      await once(socket, 'close');
      assert.equal(failure, undefined, `case ${index}: ${failure?.message}`);
      assert.match(answer, /^HTTP\/1\.1 413 /, `case ${index}`);
      assert.match(answer, /larger than 4096 bytes/);
      if (!head.includes('Connection: close')) assert.match(answer, /HTTP\/1\.1 200 OK[\s\S]*"status":"ok"/, `case ${index}: connection reused`);
    }
    await running.close();
  });

  it('logs a client that gives up in the middle of its body as an abort, not as a server error', async () => {
    const logged: Array<{ event: string; fields: Record<string, unknown> | undefined }> = [];
    const running = await startApp({ logger: (event, fields) => logged.push({ event, fields }) });
    const received = once(running.app.server, 'request');
    const socket = connect(Number(running.url.port), '127.0.0.1');
    socket.write('POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"channel":');
    // Once the server is reading the body, vanish.
    await received;
    socket.destroy();
    await eventually(() => logged.some(({ event }) => event === 'request'), 5000, 'the request log line');
    await eventually(() => logged.some(({ event }) => event === 'request.aborted'), 5000, 'request.aborted');
    assert.deepEqual(logged.filter(({ event }) => event === 'request.error'), []);
    await running.close();
  });
});
