import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually, startApp, StreamClient } from '../support/harness.ts';

/**
 * The hub writes a group's events in passes over its subscribers, a slice of them per turn of
 * the event loop, and events that arrive during a pass join it (lib/hub/hub.ts). These tests
 * open more streams than one slice holds, so every pass spans several turns.
 */
describe('fan-out in slices', async () => {
  const running = await startApp();
  after(() => running.close());

  /** Opens `count` streams on `channel` and waits until each is live (its id-only frame came). */
  async function openLive(channel: string, count: number): Promise<StreamClient[]> {
    const clients = Array.from({ length: count }, () => new StreamClient(new URL(`/stream?channel=${channel}`, running.url)));
    await Promise.all(clients.map((client) => client.opened()));
    await Promise.all(clients.map((client) => client.live()));
    return clients;
  }

  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  it('yields to the event loop during a fan-out to many streams, and still reaches every one', async () => {
    const clients = await openLive('wide', 100);
    const before = running.app.hub.stats.delivered;
    await running.app.hub.publish({ channel: 'wide', data: 'one' });
    // The first slice ran in the turn the publish scheduled, before this one: not all 100.
    await nextTurn();
    const afterOneTurn = running.app.hub.stats.delivered - before;
    assert.ok(afterOneTurn > 0 && afterOneTurn < 100, `delivered ${afterOneTurn} of 100 after one turn`);
    await eventually(() => running.app.hub.stats.delivered - before === 100, 5000, 'all 100 delivered');
    await Promise.all(clients.map((client) => client.waitForEvents(1)));
    for (const client of clients) client.abort();
  });

  it('takes turns between groups: a channel whose events never stop does not hold up another', async () => {
    const busy = await openLive('endless', 100);
    const [quiet] = await openLive('quiet', 1);
    // A publish on `endless` every turn, so its group always has another pass due.
    let publishing = true;
    const flood = (async () => {
      for (let index = 0; publishing; index++) {
        await running.app.hub.publish({ channel: 'endless', data: String(index) });
        await nextTurn();
      }
    })();
    try {
      await running.app.hub.publish({ channel: 'quiet', data: 'still heard' });
      const [event] = await quiet!.waitForEvents(1);
      assert.equal(event!.data, 'still heard');
    } finally {
      publishing = false;
      await flood;
      for (const client of [...busy, quiet!]) client.abort();
    }
  });

  it('delivers events that arrive during a pass to every stream once and in order', async () => {
    const clients = await openLive('busy', 60);
    // One publish per turn: each lands while a pass over the 60 streams is under way.
    for (let index = 0; index < 40; index++) {
      await running.app.hub.publish({ channel: 'busy', data: String(index) });
      await nextTurn();
    }
    const expected = Array.from({ length: 40 }, (_, index) => String(index));
    for (const client of clients) {
      const events = await client.waitForEvents(40);
      assert.deepEqual(
        events.map((event) => event.data),
        expected,
      );
      const ids = events.map((event) => Number(event.lastEventId));
      assert.ok(ids.every((id, index) => index === 0 || id > ids[index - 1]!), 'ids only grow');
    }
    for (const client of clients) client.abort();
  });
});
