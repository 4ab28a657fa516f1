import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../lib/http/config.ts';
import { collectGarbage, eventually, jsonBody, postAccepted, startApp, StreamClient, type Running } from '../support/harness.ts';

const publish = (running: Running, channel: string, data: string) => postAccepted(new URL('/publish', running.url), { channel, data });

/** The store's own count of history bytes, as /metrics reports it. */
async function historyBytes(running: Running): Promise<number> {
  const metrics = await (await fetch(new URL('/metrics', running.url))).text();
  const match = /^sse_history_bytes (\d+)$/m.exec(metrics);
  assert.ok(match, 'sse_history_bytes is in /metrics');
  return Number(match[1]);
}

/*
 * What the in-process store adds to the contract (tests/contract/history-limits-contract.ts,
 * which checks what is evicted and what replays on both backends): its own count of bytes,
 * what memory that count stands for, and history saved at shutdown meeting the next run's limits.
 */

describe('the in-process store counts history against HISTORY_MAX_BYTES', () => {
  it('never holds more than the budget, and fills the publishers\' three quarters of it', async () => {
    const budget = 1024 * 1024;
    const running = await startApp({ historyMaxBytes: budget });
    after(() => running.close());
    // 400 events of 4 KiB over 40 channels: about 3.4 MB as counted (twice the frame, plus the objects).
    let highest = 0;
    for (let index = 0; index < 400; index++) {
      await publish(running, `c${index % 40}`, `${index} ${'x'.repeat(4096)}`);
      if (index % 20 === 19) highest = Math.max(highest, await historyBytes(running));
    }
    assert.ok(highest <= budget, `history reached ${highest} bytes`);
    // The chat has the other quarter (lib/hub/public-share.ts).
    const now = await historyBytes(running);
    assert.ok(now > budget * 0.7 && now <= budget * 0.75, `history holds ${now} bytes`);
  });
});

describe('history saved at shutdown meets the next run\'s limits', () => {
  it('keeps the newest events within a smaller budget and fewer channels, and resets the rest', async () => {
    const first = await startApp({});
    const ids: string[] = [];
    for (let index = 0; index < 300; index++) ids.push(await publish(first, `s${index % 6}`, `${index} ${'z'.repeat(1024)}`));
    await first.app.shutdown();
    // About 2.4 KB each as counted: the publishers' three quarters of 130 KB hold the newest 40
    // or so. Four of five channels are the publishers': s2 to s5 were published last, so s0 and
    // s1 are forgotten.
    const second = await startApp({ dataDir: first.app.config.dataDir, historyMaxBytes: 130_000, maxChannels: 5 });
    after(() => second.close());
    assert.ok(second.app.hub.historyBytes! <= 130_000 * 0.75);
    const stream = (channels: string[], lastEventId: string) =>
      new StreamClient(new URL(`/stream?${channels.map((name) => `channel=${name}`).join('&')}`, second.url), { 'Last-Event-ID': lastEventId });
    const newest = stream(['s2', 's3', 's4', 's5'], ids[269]!);
    const expected = ids.slice(270).filter((_, index) => (270 + index) % 6 >= 2);
    assert.deepEqual((await newest.waitForEvents(expected.length)).map((event) => event.lastEventId), expected);
    for (const [channel, lastEventId] of [['s0', ids[269]!], ['s2', ids[200]!]]) {
      const client = stream([channel!], lastEventId!);
      assert.equal((await client.waitForEvents(1))[0]!.type, 'reset', channel);
      client.abort();
    }
    newest.abort();
  });
});

/** What the process holds in JavaScript objects and buffers (RSS also counts freed memory the allocator kept). */
function held(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

describe('history memory stays bounded whatever is published', () => {
  it('holds about the budget, not what was published, after 128 MiB of events', async (t) => {
    const budget = 8 * 1024 * 1024;
    const running = await startApp({ historyMaxBytes: budget });
    after(() => running.close());
    collectGarbage();
    const before = { held: held(), rss: process.memoryUsage().rss };
    // 2048 events of 32 KiB over 64 channels, each kept as frame and text: 128 MiB without a
    // budget, since each channel may keep 1000 of them.
    const data = 'y'.repeat(32 * 1024);
    for (let index = 0; index < 2048; index++) await publish(running, `m${index % 64}`, `${index} ${data}`);
    assert.ok(running.app.hub.historyBytes! <= budget);
    // Buffers are freed by a background sweeper after each collection, so under load the first
    // reading may still count some garbage: read again (bounded) until it is gone.
    let growth = Infinity;
    const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    try {
      await eventually(() => {
        collectGarbage();
        growth = held() - before.held;
        return growth < 2 * budget;
      }, 10_000, 'memory held to be near the budget');
    } finally {
      t.diagnostic(`held grew by ${mib(growth)}, RSS by ${mib(process.memoryUsage().rss - before.rss)}, budget ${mib(budget)}`);
    }
  });
});

describe('HISTORY_MAX_BYTES', () => {
  it('defaults to 64 MiB, and a bad value stops the server at start with a message naming it', () => {
    assert.equal(loadConfig({}).historyMaxBytes, 64 * 1024 * 1024);
    assert.equal(loadConfig({ HISTORY_MAX_BYTES: '1048576' }).historyMaxBytes, 1024 * 1024);
    for (const bad of ['64M', '-1', '1000', String(2 ** 41)]) {
      assert.throws(() => loadConfig({ HISTORY_MAX_BYTES: bad }), /HISTORY_MAX_BYTES must be an integer from 65536 to/);
    }
  });
});
