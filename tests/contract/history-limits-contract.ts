/**
 * The limits on history, written once and run against every backend (./backends.ts): all
 * channels' history stays within HISTORY_MAX_BYTES, oldest evicted first, with `reset` for a
 * replay that needed what was evicted; and the public chat has a quarter of the bytes and of
 * the channels to itself, so it can only push out chat (lib/hub/public-share.ts).
 *
 * Each backend counts bytes its own way (what an event takes in this process's memory, or in
 * Redis), so these tests leave room on both sides of the line: they check what must be gone
 * and what must still be there, not the exact count. How each store counts is checked beside
 * it (tests/hub/history-budget.test.ts, tests/scale/redis.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonBody, postAccepted, StreamClient, type Running } from '../support/harness.ts';
import type { Backend } from './backends.ts';

const publish = (node: Running, channel: string, data: string) => postAccepted(new URL('/publish', node.url), { channel, data });
const chat = (node: Running, channel: string, message: string) => postAccepted(new URL('/messages', node.url), { channel, message });

/** What a new stream on `channels` gets after `lastEventId`, once `count` events arrived: type and id of each. */
async function replay(node: Running, channels: string[], lastEventId: string, count: number) {
  const query = channels.map((channel) => `channel=${channel}`).join('&');
  const client = new StreamClient(new URL(`/stream?${query}`, node.url), { 'Last-Event-ID': lastEventId });
  try {
    return (await client.waitForEvents(count)).map((event) => ({ type: event.type, id: event.lastEventId }));
  } finally {
    client.abort();
  }
}

const asEvents = (ids: string[]) => ids.map((id) => ({ type: 'message', id }));

export function historyLimitsContract(backend: Backend): void {
  describe('history limits: HISTORY_MAX_BYTES, and the chat\'s share', () => {
    it('evicts the oldest events first, across channels, past HISTORY_MAX_BYTES, and resets a replay that needed them', async () => {
      // 1 MiB, three quarters of it for publishers; 400 events of 4 KiB are well past that on
      // both backends, and the newest 40 are well within it.
      const [a, b] = await backend.nodes({ historyMaxBytes: 1024 * 1024 });
      const early = await publish(a, 'early', 'published first');
      const ids: string[] = [];
      for (let index = 0; index < 400; index++) ids.push(await publish(index % 2 ? a : b, `c${index % 40}`, `${index} ${'x'.repeat(4096)}`));
      // Each channel may keep 1000 events: only the byte budget can have evicted these.
      for (const [channel, lastEventId] of [['early', String(Number(early) - 1)], ['c0', ids[0]!]] as const) {
        const client = new StreamClient(new URL(`/stream?channel=${channel}`, b.url), { 'Last-Event-ID': lastEventId });
        const [reset] = await client.waitForEvents(1);
        client.abort();
        assert.deepEqual([reset!.type, JSON.parse(reset!.data)], ['reset', { reason: 'history-exceeded' }], channel);
      }
      // The newest events replay in full, on every channel they went to (16 is the most one stream follows).
      const channels = Array.from({ length: 16 }, (_, index) => `c${index}`);
      const expected = ids.slice(360).filter((_, index) => (360 + index) % 40 < 16);
      assert.deepEqual(await replay(a, channels, ids[359]!, expected.length), asEvents(expected));
    });

    it('forgets only chat channels when the chat floods new channel names', async () => {
      // Eight channels: two for channels only the chat has written to, six for publishers'.
      const [a, b] = await backend.nodes({ maxChannels: 8 });
      const before = await chat(a, 'lobby', 'hello');
      const news = [await publish(b, 'news', 'one'), await publish(b, 'news', 'two')];
      // The demos publish through the hub itself: theirs are publishers' channels too.
      const tick = String((await a.app.hub.publish({ channel: 'sse', data: 'tick' })).id);
      for (let index = 0; index < 50; index++) await chat(index % 2 ? a : b, `flood${index}`, 'spam');
      assert.deepEqual(await replay(b, ['news'], before, 2), asEvents(news));
      assert.deepEqual(await replay(b, ['sse'], before, 1), asEvents([tick]));
      // The chat's own channels are forgotten, with a reset rather than a gap.
      assert.equal((await replay(a, ['lobby'], String(Number(before) - 1), 1))[0]!.type, 'reset');
    });

    it('hands a channel to the publishers once one writes to it, even if the chat made it first', async () => {
      const [a, b] = await backend.nodes({ maxChannels: 8 });
      const squatted = await chat(a, 'alerts', 'I was here first');
      const alert = await publish(b, 'alerts', 'real alert');
      for (let index = 0; index < 50; index++) await chat(index % 2 ? a : b, `flood${index}`, 'spam');
      assert.deepEqual(await replay(a, ['alerts'], squatted, 1), asEvents([alert]));
    });

    it('charges chat messages to the chat\'s quarter of HISTORY_MAX_BYTES, so a flood of them evicts only chat', async () => {
      // 1 MiB: 768 KiB for publishers, 256 KiB for the chat.
      const [a, b] = await backend.nodes({ historyMaxBytes: 1024 * 1024 });
      const before = await publish(a, 'warmup', 'first');
      // 40 events of 8 KiB: within the publishers' part on both backends.
      const feed: string[] = [];
      for (let index = 0; index < 40; index++) feed.push(await publish(b, 'feed', `${index} ${'f'.repeat(8192)}`));
      // 200 messages of 2000 characters on one chat channel: past the chat's part on both.
      const first = await chat(a, 'lounge', 'm'.repeat(2000));
      for (let index = 1; index < 200; index++) await chat(index % 2 ? a : b, 'lounge', 'm'.repeat(2000));
      assert.deepEqual(await replay(b, ['feed'], before, 40), asEvents(feed));
      assert.equal((await replay(a, ['lounge'], first, 1))[0]!.type, 'reset');
    });
  });
}
