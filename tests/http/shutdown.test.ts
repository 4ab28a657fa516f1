import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually, StreamClient } from '../support/harness.ts';
import { publishBurst, startServerProcess } from '../support/server-process.ts';

describe('graceful shutdown of the real process', () => {
  it('on SIGTERM during a publish burst, delivers every event it accepted, exits 0, and replays them after restart', async () => {
    const server = await startServerProcess({ env: { RETRY_MS: '2500' } });
    const { url } = server;
    const client = new StreamClient(new URL('/stream?channel=burst', url));
    await client.opened();

    const burst = publishBurst(url, 'burst', 8);
    const { accepted } = burst;
    // Signal in the middle of the burst, once a good number of events went through.
    await eventually(() => accepted.length >= 200, 20_000, '200 accepted publishes');
    const code = await server.stop();
    await burst.finished();
    await client.waitForEnd();

    assert.equal(code, 0);
    const received = new Set(client.events.map((event) => event.lastEventId));
    const missing = accepted.filter((id) => !received.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${accepted.length} accepted events never arrived`);
    // The stream's last words tell the browser when to come back.
    assert.match(client.raw, /retry: 2500\n\n$/);

    // A browser that missed the last events reconnects to the restarted server: it gets exactly
    // those, not a reset, because history was saved at shutdown.
    const restarted = await startServerProcess({ env: { DATA_DIR: server.dataDir } });
    const sorted = accepted.map(Number).sort((a, b) => a - b);
    const seen = sorted.at(-51)!;
    const resumed = new StreamClient(new URL('/stream?channel=burst', restarted.url), { 'Last-Event-ID': String(seen) });
    const replayed = await resumed.waitForEvents(50);
    assert.deepEqual(
      replayed.map((event) => Number(event.lastEventId)),
      sorted.slice(-50),
    );
    assert.ok(replayed.every((event) => event.type === 'message'));
    resumed.abort();
    await restarted.stop();
  });
});
