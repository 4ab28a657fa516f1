/**
 * One server.ts, every runtime: the real server, started as a child process under one runtime
 * of ./runtimes.ts, checked over the wire for what a reader relies on. Each runtime has a test
 * file of its own that runs this suite (so each gets its own time limit, and the runner may
 * run them side by side); the assertions are the same for every runtime, and every test name
 * starts with the runtime's, so a failure says which runtime broke what.
 *
 * A runtime whose binary is not installed here is skipped with the reason; under CI, where
 * `npm ci` installs all of them, a missing one is a failure.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertStreamHeaders, eventually, postAccepted, StreamClient, until } from '../support/harness.ts';
import { publishBurst, startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { RUNTIMES, type Runtime, type RuntimeId } from './runtimes.ts';

/** The server's `/metrics`, as name{labels} → value. */
async function metrics(base: URL): Promise<Map<string, number>> {
  const text = await (await fetch(new URL('/metrics', base))).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

/** Reads `/metrics` until `predicate` holds: counts inside another process have no event to wait on. */
async function metricsUntil(base: URL, predicate: (samples: Map<string, number>) => boolean, what: string, ms = 10_000): Promise<Map<string, number>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const samples = await metrics(base);
    if (predicate(samples)) return samples;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}; metrics: ${JSON.stringify([...samples])}`);
  }
}

const publish = (base: URL, body: Record<string, unknown>) => postAccepted(new URL('/publish', base), body);

/**
 * Writes `bytes` on a fresh raw socket in one go, as a client that sends its whole request
 * without waiting for an answer, and reads everything until the server closes (the last
 * request says `Connection: close`). A connection reset (or no close within `ms`) rejects,
 * with what had arrived.
 *
 * It does not half-close (`end()`) after writing, as curl does not: Deno 2.9's node:http
 * drops its answer to a POST whose client half-closes after the body, even a 10-byte one
 * (Node and Bun answer). That is a limitation of the runtime, and no server code can undo it.
 */
function rawExchange(base: URL, bytes: Buffer, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(base.port), base.hostname);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`not closed within ${ms} ms; got ${JSON.stringify(received.slice(0, 300))}`));
    }, ms);
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`${error.code ?? error.message} after ${JSON.stringify(received.slice(0, 300))}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.write(bytes);
  });
}

/** Opens `/stream` on a raw socket that never reads a byte of the answer. */
function neverReading(base: URL, path: string): Socket {
  const socket = connect(Number(base.port), base.hostname);
  socket.on('error', () => socket.destroy()); // the server cutting it off is the point
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${base.host}\r\n\r\n`);
  socket.pause();
  return socket;
}

const MiB = 1024 * 1024;

/** Why this runtime's tests are skipped here, or false when they must run. */
export function skipReason(runtime: Runtime): string | false {
  if (runtime.missing === undefined || process.env['CI']) return false;
  return `${runtime.name} skipped: ${runtime.missing}`;
}

function start(runtime: Runtime, env: Record<string, string> = {}): Promise<ServerProcess> {
  if (runtime.missing !== undefined) throw new Error(`${runtime.name} is required under CI: ${runtime.missing}`);
  runtime.prepare?.();
  return startServerProcess({
    command: runtime.command(),
    env: { ...runtime.env, MAX_STREAMS_PER_ADDRESS: '100000', POSTS_PER_MINUTE: '100000', ...env },
  });
}

/** The whole suite, for the runtime `id`. */
export function describeRuntime(id: RuntimeId): void {
  const runtime = RUNTIMES.find((candidate) => candidate.id === id)!;
  const name = runtime.name;
  describe(`server.ts on ${name} (${runtime.howToRun})`, { skip: skipReason(runtime), timeout: 300_000 }, () => {
    let server: ServerProcess;
    before(async () => {
      server = await start(runtime, { RETRY_MS: '1500', HEARTBEAT_MS: '200' });
    });
    after(async () => {
      if (server) assert.equal(await server.stop(), 0, `${name} did not exit cleanly:\n${server.log()}`);
    });
    const at = (path: string) => new URL(path, server.url);

    it(`${name}: opens /stream with the event-stream headers, flushed at once, and retry: first`, async () => {
      const client = new StreamClient(at('/stream?channel=headers'));
      try {
        const response = await client.opened();
        assertStreamHeaders(response);
        // Then a lone id: frame, where this connection starts in the hub's id space.
        await until(client, 'change', () => /\n\nid: \d+\n\n/.test(client.raw) || client.ended);
        assert.match(client.raw, /^retry: 1500\n\nid: \d+\n\n$/);
        assert.equal(client.decoder.retry, 1500);
      } finally {
        client.abort();
      }
    });

    it(`${name}: frames multi-line data as one data: line per line (LF, CRLF and CR)`, async () => {
      const client = new StreamClient(at('/stream?channel=framing'));
      try {
        await client.opened();
        const id = await publish(server.url, { channel: 'framing', event: 'note', data: 'one\ntwo\r\nthree\rfour' });
        const [event] = await client.waitForEvents(1);
        assert.deepEqual(event, { type: 'note', data: 'one\ntwo\nthree\nfour', lastEventId: id });
        assert.ok(
          client.raw.endsWith(`\n\nevent: note\nid: ${id}\ndata: one\ndata: two\ndata: three\ndata: four\n\n`),
          `frame was ${JSON.stringify(client.raw)}`,
        );
      } finally {
        client.abort();
      }
    });

    it(`${name}: sends heartbeat comments between frames on an idle stream`, async () => {
      const client = new StreamClient(at('/stream?channel=quiet'));
      try {
        await client.opened();
        // HEARTBEAT_MS is 200: a stream with nothing to say hears from the server within 400 ms.
        const heartbeats = () => client.decoder.comments.filter((comment) => comment === ' heartbeat').length;
        await until(client, 'change', () => heartbeats() >= 2 || client.ended);
        assert.match(client.raw, /^retry: 1500\n\nid: \d+\n\n(: heartbeat\n\n){2,}$/);
      } finally {
        client.abort();
      }
    });

    it(`${name}: plays /events with ids 1 to 5 and end, resumes after Last-Event-ID, and answers 204 when done`, async () => {
      const full = new StreamClient(at('/events?interval=10'));
      await full.waitForEnd();
      assert.deepEqual(full.events.map((event) => event.lastEventId), ['1', '2', '3', '4', '5', '5']);
      assert.equal(full.events.at(-1)!.type, 'end');

      const resumed = new StreamClient(at('/events?interval=10'), { 'Last-Event-ID': '3' });
      await resumed.waitForEnd();
      assert.deepEqual(resumed.events.map((event) => [event.type, event.lastEventId]), [['message', '4'], ['message', '5'], ['end', '5']]);
      assert.equal(resumed.events[0]!.data, full.events[3]!.data);

      const done = await fetch(at('/events'), { headers: { 'Last-Event-ID': '5' } });
      assert.equal(done.status, 204);
      assert.equal(await done.text(), '');
    });

    it(`${name}: fans published events out to every subscriber, in order`, async () => {
      const clients = [1, 2, 3].map(() => new StreamClient(at('/stream?channel=fan')));
      try {
        await Promise.all(clients.map((client) => client.opened()));
        const ids: string[] = [];
        for (let index = 0; index < 20; index++) ids.push(await publish(server.url, { channel: 'fan', data: `event ${index}` }));
        for (const client of clients) {
          const events = await client.waitForEvents(20);
          assert.deepEqual(events.map((event) => event.lastEventId), ids);
          assert.deepEqual(events.map((event) => event.data), ids.map((_id, index) => `event ${index}`));
        }
        assert.deepEqual([...ids].sort((a, b) => Number(a) - Number(b)), ids, 'ids only grow');
      } finally {
        for (const client of clients) client.abort();
      }
    });

    it(`${name}: replays what was missed after Last-Event-ID, and sends reset for an id it never issued`, async () => {
      const ids: string[] = [];
      for (let index = 0; index < 10; index++) ids.push(await publish(server.url, { channel: 'replay', data: `missed ${index}` }));
      const resumed = new StreamClient(at('/stream?channel=replay'), { 'Last-Event-ID': ids[4]! });
      const unknown = new StreamClient(at('/stream?channel=replay'), { 'Last-Event-ID': '1' });
      try {
        const replayed = await resumed.waitForEvents(5);
        assert.deepEqual(replayed.map((event) => event.lastEventId), ids.slice(5));
        assert.deepEqual(replayed.map((event) => event.data), ['missed 5', 'missed 6', 'missed 7', 'missed 8', 'missed 9']);
        const [reset] = await unknown.waitForEvents(1);
        assert.equal(reset!.type, 'reset');
        assert.deepEqual(JSON.parse(reset!.data), { reason: 'unknown-id' });
        assert.equal(reset!.lastEventId, ids[9]);
      } finally {
        resumed.abort();
        unknown.abort();
      }
    });

    it(`${name}: releases every stream when its client disconnects (open streams back to 0)`, async () => {
      await metricsUntil(server.url, (m) => m.get('sse_open_connections') === 0, 'no stream left from earlier tests');
      const clients = [
        ...Array.from({ length: 10 }, (_, index) => new StreamClient(at(`/stream?channel=leave&channel=leave-${index}`))),
        new StreamClient(at('/events?interval=10000')),
        new StreamClient(at('/events?interval=10000')),
      ];
      await Promise.all(clients.map((client) => client.opened()));
      await metricsUntil(server.url, (m) => m.get('sse_open_connections') === 12 && m.get('sse_subscribers') === 10, '12 open streams');
      for (const client of clients) client.abort();
      await metricsUntil(server.url, (m) => m.get('sse_open_connections') === 0 && m.get('sse_subscribers') === 0, 'every stream released');
    });

    it(`${name}: answers a 4 MiB body with a 413 the client reads (not a reset), and keeps the connection`, async () => {
      // Larger than the kernel's socket buffers: a server that stops reading and closes would
      // make its kernel answer the rest with a reset, which can destroy the 413 in flight.
      const json = Buffer.from(JSON.stringify({ channel: 'big', data: 'x'.repeat(4 * MiB) }));
      const head = `POST /publish HTTP/1.1\r\nHost: ${server.url.host}\r\nContent-Type: application/json\r\n`;
      const next = Buffer.from(`GET /healthz HTTP/1.1\r\nHost: ${server.url.host}\r\nConnection: close\r\n\r\n`);
      const request = (headers: string, ...body: Array<string | Buffer>) =>
        Buffer.concat([Buffer.from(`${head}${headers}\r\n`), ...body.map((part) => Buffer.from(part))]);
      const chunk = `${json.length.toString(16)}\r\n`;
      const cases: Array<[string, Buffer]> = [
        ['Content-Length, then a request on the same connection', request(`Content-Length: ${json.length}\r\n`, json, next)],
        ['Content-Length and Connection: close', request(`Content-Length: ${json.length}\r\nConnection: close\r\n`, json)],
        // Chunked: no declared length, so the limit is found while reading.
        ['chunked, then a request on the same connection', request('Transfer-Encoding: chunked\r\n', chunk, json, '\r\n0\r\n\r\n', next)],
      ];
      for (const [what, bytes] of cases) {
        const answer = await rawExchange(server.url, bytes).catch((error: Error) => assert.fail(`${what}: ${error.message}`));
        assert.match(answer, /^HTTP\/1\.1 413 /, `${what}: ${answer.slice(0, 200)}`);
        assert.match(answer, /"error":"Request body is larger than 65536 bytes"/, what);
        if (what.includes('same connection')) assert.match(answer, /HTTP\/1\.1 200 OK[\s\S]*"status":"ok"/, `${what}: ${answer}`);
      }
    });

    it(`${name}: cuts never-reading clients at the backlog bound, and its memory stays bounded`, async (t) => {
      // Heartbeats off: the stall check must not be what cuts them. Short history: what stays
      // in memory is the backlog, not the channel's history.
      const flooded = await start(runtime, { HEARTBEAT_MS: '0', HISTORY_SIZE: '10', MAX_BACKLOG_BYTES: String(MiB) });
      const sockets: Socket[] = [];
      try {
        const data = 'x'.repeat(32 * 1024);
        // Warm up (compilers, buffers, the allocator) with nobody listening, then measure.
        for (let index = 0; index < 200; index++) await publish(flooded.url, { channel: 'flood', data });
        const baseline = (await metrics(flooded.url)).get('process_resident_memory_bytes')!;
        for (let index = 0; index < 4; index++) sockets.push(neverReading(flooded.url, '/stream?channel=flood'));
        await metricsUntil(flooded.url, (m) => m.get('sse_subscribers') === 4, 'four never-reading subscribers');

        // 4000 events of 32 KiB: 125 MiB. Without the bound, the server would hold nearly
        // all of it for the four clients (at least 160 MiB more, measured, on every runtime).
        const total = 4000;
        let sent = 0;
        let peak = baseline;
        await Promise.all(
          Array.from({ length: 8 }, async (_, publisher) => {
            while (sent < total) {
              sent += 1;
              await publish(flooded.url, { channel: 'flood', data });
              if (publisher === 0 && sent % 8 === 0) {
                peak = Math.max(peak, (await metrics(flooded.url)).get('process_resident_memory_bytes')!);
              }
            }
          }),
        );
        // Each is cut when a write finds its backlog over the bound; give the closes a moment
        // (bounded), then judge memory first: it is what the bound is for.
        let cut = await metrics(flooded.url);
        for (const deadline = Date.now() + 5000; cut.get('sse_open_connections') !== 0 && Date.now() < deadline; ) {
          cut = await metrics(flooded.url);
        }
        peak = Math.max(peak, cut.get('process_resident_memory_bytes')!);
        const growth = peak - baseline;
        t.diagnostic(`${name}: RSS ${(baseline / MiB).toFixed(1)} MiB before, peak growth ${(growth / MiB).toFixed(1)} MiB`);
        assert.ok(growth < 96 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB while 125 MiB went to never-reading clients`);
        assert.equal(cut.get('sse_clients_dropped_total{reason="slow"}'), 4, 'all four cut for their backlog');
        assert.equal(cut.get('sse_open_connections'), 0);
      } finally {
        for (const socket of sockets) socket.destroy();
        assert.equal(await flooded.stop(), 0);
      }
    });

    it(`${name}: on SIGTERM delivers every accepted event, ends streams with retry:, exits 0, and resumes after restart`, async () => {
      const first = await start(runtime, { RETRY_MS: '2500' });
      const client = new StreamClient(new URL('/stream?channel=burst', first.url));
      await client.opened();
      const burst = publishBurst(first.url, 'burst', 4);
      const { accepted } = burst;
      // Signal in the middle of the burst, once a good number of events went through.
      await eventually(() => accepted.length >= 100, 20_000, '100 accepted publishes');
      const code = await first.stop();
      await burst.finished();
      await client.waitForEnd();
      assert.equal(code, 0, first.log());
      const received = new Set(client.events.map((event) => event.lastEventId));
      const missing = accepted.filter((id) => !received.has(id));
      assert.deepEqual(missing, [], `${missing.length} of ${accepted.length} accepted events never arrived`);
      assert.match(client.raw, /retry: 2500\n\n$/);

      // History was saved at shutdown: a client that missed the last ten resumes without reset.
      const restarted = await start(runtime, { DATA_DIR: first.dataDir });
      try {
        const sorted = accepted.map(Number).sort((a, b) => a - b);
        const resumed = new StreamClient(new URL('/stream?channel=burst', restarted.url), { 'Last-Event-ID': String(sorted.at(-11)) });
        const replayed = await resumed.waitForEvents(10);
        resumed.abort();
        assert.deepEqual(replayed.map((event) => Number(event.lastEventId)), sorted.slice(-10));
        assert.ok(replayed.every((event) => event.type === 'message'));
      } finally {
        assert.equal(await restarted.stop(), 0);
      }
    });
  });
}
