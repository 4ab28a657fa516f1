import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonBody, startApp, StreamClient, type Running } from '../support/harness.ts';

async function post(running: Running, path: string, body: unknown): Promise<string> {
  const response = await fetch(new URL(path, running.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 202, path);
  return (await jsonBody(response)).id as string;
}

const publish = (running: Running, channel: string, data: string) => post(running, '/publish', { channel, data });
const chat = (running: Running, channel: string, message: string) => post(running, '/messages', { channel, message });

/** The events a new stream on `channel` replays after `lastEventId`, once `count` arrived. */
async function replay(running: Running, channel: string, lastEventId: string, count: number) {
  const client = new StreamClient(new URL(`/stream?channel=${channel}`, running.url), { 'Last-Event-ID': lastEventId });
  try {
    return (await client.waitForEvents(count)).map((event) => ({ type: event.type, id: event.lastEventId }));
  } finally {
    client.abort();
  }
}

describe('the chat cannot push out publishers\' history', () => {
  it('forgets only chat channels when the chat floods new channel names', async () => {
    // Eight channels: two for chat-created ones, six for the publishers' (a quarter each way).
    const running = await startApp({ maxChannels: 8 });
    const before = await chat(running, 'lobby', 'hello');
    const news = [await publish(running, 'news', 'one'), await publish(running, 'news', 'two')];
    // The demos publish through the hub itself: theirs are publishers' channels too.
    const tick = (await running.app.hub.publish({ channel: 'sse', data: 'tick' })).id;
    for (let index = 0; index < 50; index++) await chat(running, `flood${index}`, 'spam');
    assert.ok(running.app.hub.channelCount <= 8);
    assert.deepEqual(await replay(running, 'news', before, 2), news.map((id) => ({ type: 'message', id })));
    assert.deepEqual(await replay(running, 'sse', before, 1), [{ type: 'message', id: String(tick) }]);
    // The chat's own channels do get forgotten, with a reset rather than a gap.
    assert.equal((await replay(running, 'lobby', String(Number(before) - 1), 1))[0]!.type, 'reset');
    await running.close();
  });

  it('hands a channel to the publishers once one writes to it, even if the chat made it first', async () => {
    const running = await startApp({ maxChannels: 8 });
    const squatted = await chat(running, 'alerts', 'I was here first');
    const alert = await publish(running, 'alerts', 'real alert');
    for (let index = 0; index < 50; index++) await chat(running, `flood${index}`, 'spam');
    assert.deepEqual(await replay(running, 'alerts', squatted, 1), [{ type: 'message', id: alert }]);
    await running.close();
  });

  it('charges chat messages to the chat\'s quarter of HISTORY_MAX_BYTES, so a flood of them evicts only chat', async () => {
    // 1 MiB: 768 KiB for publishers, 256 KiB for the chat.
    const running = await startApp({ historyMaxBytes: 1024 * 1024 });
    const before = await publish(running, 'warmup', 'first');
    // 40 events of 8 KiB: about 670 KB as counted, within the publishers' part.
    const feed: string[] = [];
    for (let index = 0; index < 40; index++) feed.push(await publish(running, 'feed', `${index} ${'f'.repeat(8192)}`));
    // 200 messages of 2000 characters on one chat channel: about 880 KB as counted.
    const firstMessage = await chat(running, 'lounge', 'm'.repeat(2000));
    for (let index = 1; index < 200; index++) await chat(running, 'lounge', 'm'.repeat(2000));
    assert.ok(running.app.hub.historyBytes! <= 1024 * 1024);
    const replayed = await replay(running, 'feed', before, 40);
    assert.deepEqual(replayed.map((event) => event.id), feed);
    assert.equal((await replay(running, 'lounge', firstMessage, 1))[0]!.type, 'reset');
    await running.close();
  });
});
