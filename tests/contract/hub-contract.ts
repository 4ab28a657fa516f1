/**
 * The hub's contract, written once and run against every backend (./backends.ts): what
 * `/stream`, `/publish` and `/messages` promise, whether channels and history live in this
 * process or in Redis. Fan-out, channels, replay after `Last-Event-ID`, the reset rules,
 * backpressure and the counts that must return to zero are the same rules on both.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { eventually, jsonBody, post, postAccepted, StreamClient, until, type Running } from '../support/harness.ts';
import type { Backend } from './backends.ts';

const dataOf = (client: StreamClient) => client.events.map((event) => event.data);

export function hubContract(backend: Backend): void {
  describe('the hub: /stream, /publish, /messages', async () => {
    // Node A and node B share one store (with Redis; in one process they are one server).
    const [a, b] = await backend.nodes({ historySize: 5 });
    const on = (node: Running, path: string) => new URL(path, node.url);
    const publish = (node: Running, channel: string, data: unknown, event?: string) => postAccepted(on(node, '/publish'), { channel, data, event });

    it('delivers a published event to the channel, with its id and type', async () => {
      const client = new StreamClient(on(b, '/stream?channel=news'));
      await client.live();
      const id = await publish(a, 'news', 'hello', 'headline');
      const [event] = await client.waitForEvents(1);
      assert.deepEqual(event, { type: 'headline', data: 'hello', lastEventId: id });
      // Ids are short and numeric, so one id can resume every channel of a connection.
      assert.match(id, /^\d{13,15}$/);
      client.abort();
    });

    it('follows Flask-SSE: no channel means channel "sse"', async () => {
      const client = new StreamClient(on(b, '/stream'));
      await client.live();
      await publish(a, 'sse', 'default');
      assert.equal((await client.waitForEvents(1))[0]!.data, 'default');
      client.abort();
    });

    it('sends JSON values as JSON text, and keeps strings as they are', async () => {
      const client = new StreamClient(on(b, '/stream?channel=json'));
      await client.live();
      await publish(a, 'json', { price: 1.5, tags: ['a'] });
      await publish(a, 'json', 'line one\nline two');
      await publish(a, 'json', 0);
      const events = await client.waitForEvents(3);
      assert.deepEqual(events.map((event) => event.data), ['{"price":1.5,"tags":["a"]}', 'line one\nline two', '0']);
      client.abort();
    });

    it('keeps channels apart: bob does not see what goes to tom', async () => {
      const bob = new StreamClient(on(b, '/stream?channel=channel_bob'));
      const tom = new StreamClient(on(b, '/stream?channel=channel_tom'));
      await Promise.all([bob.live(), tom.live()]);
      await publish(a, 'channel_tom', 'for tom');
      await publish(a, 'channel_bob', 'for bob');
      assert.deepEqual((await bob.waitForEvents(1)).map((event) => event.data), ['for bob']);
      assert.deepEqual((await tom.waitForEvents(1)).map((event) => event.data), ['for tom']);
      // Bob's first event is the one after tom's: had tom's leaked, it would have come first.
      assert.equal(bob.events.length, 1);
      bob.abort();
      tom.abort();
    });

    it('replays missed events across several channels after Last-Event-ID, in order, without duplicates', async () => {
      // The client leaves node A and comes back on node B.
      const first = new StreamClient(on(a, '/stream?channel=r1&channel=r2'));
      await first.live();
      await publish(a, 'r1', 'a');
      await first.waitForEvents(1);
      first.abort();
      const seen = first.events.at(-1)!.lastEventId;
      await publish(b, 'r2', 'b');
      await publish(a, 'other', 'not followed');
      await publish(b, 'r1', 'c');
      const again = new StreamClient(on(b, '/stream?channel=r1&channel=r2'), { 'Last-Event-ID': seen });
      await again.waitForEvents(2);
      await publish(a, 'r2', 'd');
      const events = await again.waitForEvents(3);
      assert.deepEqual(events.map((event) => event.data), ['b', 'c', 'd']);
      const ids = events.map((event) => Number(event.lastEventId));
      assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
      assert.ok(ids[0]! > Number(seen));
      again.abort();
    });

    it('accepts ?lastEventId= for clients that cannot set headers', async () => {
      const id = await publish(a, 'q', 'one');
      await publish(a, 'q', 'two');
      const client = new StreamClient(on(b, `/stream?channel=q&lastEventId=${id}`));
      assert.deepEqual((await client.waitForEvents(1)).map((event) => event.data), ['two']);
      client.abort();
    });

    it('gives a new client an id at once, so a reconnect before any event still resumes without a gap', async () => {
      const client = new StreamClient(on(a, '/stream?channel=quiet'));
      await eventually(() => /id: \d+\n\n/.test(client.raw), 5000, 'the id-only frame');
      client.abort();
      const [, id] = /id: (\d+)\n\n/.exec(client.raw)!;
      await publish(a, 'quiet', 'published while away');
      const again = new StreamClient(on(b, '/stream?channel=quiet'), { 'Last-Event-ID': id! });
      assert.equal((await again.waitForEvents(1))[0]!.data, 'published while away');
      again.abort();
    });

    it('sends an explicit reset when history no longer reaches back to Last-Event-ID', async () => {
      const id = await publish(a, 'short', 'old');
      const newer: string[] = [];
      for (let index = 0; index < 6; index++) newer.push(await publish(a, 'short', `new ${index}`)); // history holds 5
      const client = new StreamClient(on(b, '/stream?channel=short'), { 'Last-Event-ID': id });
      const [reset] = await client.waitForEvents(1);
      assert.equal(reset!.type, 'reset');
      assert.deepEqual(JSON.parse(reset!.data), { reason: 'history-exceeded' });
      // The reset carries the current id, so the next reconnect resumes from here.
      assert.ok(Number(reset!.lastEventId) > Number(id));
      // One event later is still covered: the five newest are kept exactly.
      const covered = new StreamClient(on(b, '/stream?channel=short'), { 'Last-Event-ID': newer[0]! });
      assert.deepEqual((await covered.waitForEvents(5)).map((event) => event.data), ['new 1', 'new 2', 'new 3', 'new 4', 'new 5']);
      covered.abort();
      await publish(a, 'short', 'live');
      assert.equal((await client.waitForEvents(2))[1]!.data, 'live');
      client.abort();
    });

    it('sends reset for an id from before a restart or from the future', async () => {
      // From before a restart: the in-process hub started afresh, or Redis lost its data.
      for (const id of ['1', String(a.app.hub.lastId + 1000)]) {
        const client = new StreamClient(on(b, '/stream?channel=x'), { 'Last-Event-ID': id });
        const [reset] = await client.waitForEvents(1);
        assert.equal(reset!.type, 'reset');
        assert.deepEqual(JSON.parse(reset!.data), { reason: 'unknown-id' });
        client.abort();
      }
    });

    it('sends reset, not a gap, when a forgotten channel comes back', async () => {
      const [own, peer] = await backend.nodes({ maxChannels: 2 });
      const first = await publish(own, 'x', 'x1');
      await publish(own, 'x', 'x2');
      await publish(own, 'a', 'a');
      await publish(own, 'b', 'b'); // three channels: x, the least recently published, is forgotten
      await publish(own, 'x', 'x5'); // and comes back with a history that starts here
      const client = new StreamClient(on(peer, '/stream?channel=x'), { 'Last-Event-ID': first });
      const [reset] = await client.waitForEvents(1);
      assert.equal(reset!.type, 'reset');
      client.abort();
    });

    it('refuses bad subscriptions with a JSON 400', async () => {
      const bad = [
        '/stream?channel=a%20b',
        '/stream?channel=',
        `/stream?channel=${'x'.repeat(65)}`,
        '/stream?channel=orders:all',
        `/stream?${Array.from({ length: 17 }, (_, index) => `channel=c${index}`).join('&')}`,
        '/stream?lastEventId=abc',
        '/stream?lastEventId=-1',
      ];
      for (const path of bad) {
        const response = await fetch(on(a, path));
        assert.equal(response.status, 400, path);
        assert.ok(typeof (await jsonBody(response)).error === 'string');
      }
    });

    it('refuses bad publishes with a clear 4xx and publishes nothing', async () => {
      const before = a.app.hub.lastId;
      const cases: Array<[unknown, number, RegExp]> = [
        ['{not json', 400, /not valid JSON/],
        [[1, 2], 400, /JSON object/],
        [{ data: 'x' }, 400, /channel/],
        [{ channel: 'a b', data: 'x' }, 400, /channel "a b"/],
        [{ channel: 'ok' }, 400, /data is required/],
        [{ channel: 'ok', data: 'x', event: 'two\nlines' }, 400, /line break/],
        [{ channel: 'ok', data: 'x', event: 'cr\rhere' }, 400, /line break/],
        [{ channel: 'ok', data: 'x', event: 5 }, 400, /event must be a string/],
      ];
      for (const [body, status, message] of cases) {
        const response = await fetch(on(a, '/publish'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: typeof body === 'string' ? body : JSON.stringify(body),
        });
        assert.equal(response.status, status, JSON.stringify(body));
        assert.match((await jsonBody(response)).error, message);
      }
      const big = await post(on(a, '/publish'), { channel: 'ok', data: 'x'.repeat(70 * 1024) });
      assert.equal(big.status, 413);
      const wrongType = await fetch(on(a, '/publish'), { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hi' });
      assert.equal(wrongType.status, 415);
      assert.equal(a.app.hub.lastId, before);
    });

    it('takes chat messages as a form or as JSON and sends them as social events', async () => {
      const client = new StreamClient(on(b, '/stream?channel=channel_public'));
      await client.live();
      const form = await post(on(a, '/messages'), 'channel=channel_public&message=hi+from+a+form%20%26+more');
      assert.equal(form.status, 202);
      const json = await post(on(a, '/messages'), { channel: 'channel_public', message: '<b>not bold</b> 🎉' });
      assert.equal(json.status, 202);
      const events = await client.waitForEvents(2);
      assert.deepEqual(events.map((event) => [event.type, JSON.parse(event.data).message, JSON.parse(event.data).channel]), [
        ['social', 'hi from a form & more', 'channel_public'],
        ['social', '<b>not bold</b> 🎉', 'channel_public'],
      ]);
      client.abort();
    });

    it('refuses chat messages that are empty, too long, or for a bad channel', async () => {
      const before = a.app.hub.lastId;
      for (const body of [
        { channel: 'c', message: '' },
        { channel: 'c', message: 'x'.repeat(2001) },
        { channel: 'c', message: 42 },
        { channel: 'c d', message: 'hi' },
        { message: 'no channel' },
      ]) {
        const response = await post(on(a, '/messages'), body);
        assert.equal(response.status, 400, JSON.stringify(body));
      }
      // 2000 emoji are 2000 characters (4000 UTF-16 units): accepted.
      assert.equal((await post(on(a, '/messages'), { channel: 'c', message: '🎉'.repeat(2000) })).status, 202);
      assert.equal(a.app.hub.lastId, before + 1);
    });

    it('replays while events keep coming: no gap and no duplicate for clients joining mid-burst', async () => {
      // A history long enough to cover every client joining here (the shared one holds 5).
      const [own, peer] = await backend.nodes();
      const ids: number[] = [];
      for (let index = 0; index < 20; index++) ids.push((await own.app.hub.publish({ channel: 'burst', data: String(index) })).id);
      const total = 300;
      const joined: Array<{ client: StreamClient; from: number }> = [];
      for (let index = 20; index < total; index++) {
        ids.push((await own.app.hub.publish({ channel: 'burst', data: String(index) })).id);
        if (index % 40 === 0) {
          const from = index - 10;
          joined.push({ client: new StreamClient(on(peer, '/stream?channel=burst'), { 'Last-Event-ID': String(ids[from]) }), from });
        }
      }
      for (const { client, from } of joined) {
        await until(client, 'change', () => client.events.at(-1)?.data === String(total - 1), 10_000);
        const expected = Array.from({ length: total - 1 - from }, (_, offset) => String(from + 1 + offset));
        assert.deepEqual(dataOf(client), expected);
        client.abort();
      }
    });

    it('drops a client that never reads, while a fast client still gets everything', async () => {
      const [own, peer] = await backend.nodes({ maxBacklogBytes: 64 * 1024 });
      const fast = new StreamClient(on(peer, '/stream?channel=firehose'));
      await fast.live();
      const slow = connect(Number(peer.url.port), '127.0.0.1');
      slow.write('GET /stream?channel=firehose HTTP/1.1\r\nHost: x\r\n\r\n');
      slow.pause();
      await eventually(() => peer.app.hub.subscriberCount === 2, 5000, 'both subscribers');
      let published = 0;
      const chunk = 'y'.repeat(60_000);
      while (peer.app.streams.closed.slow === 0) {
        assert.ok(published < 2000, 'the slow client was never dropped');
        const burst: Array<Promise<unknown>> = [];
        for (let index = 0; index < 8; index++) burst.push(own.app.hub.publish({ channel: 'firehose', data: `${published++} ${chunk}` }));
        await Promise.all(burst);
        await fast.waitForEvents(published);
      }
      assert.equal(fast.events.length, published);
      assert.deepEqual(
        fast.events.map((event) => Number(event.data.split(' ')[0])),
        Array.from({ length: published }, (_, index) => index),
      );
      const metrics = await (await fetch(on(peer, '/metrics'))).text();
      assert.match(metrics, /^sse_clients_dropped_total\{reason="slow"\} 1$/m);
      slow.destroy();
      fast.abort();
    });

    it('returns subscriber and connection counts to zero after mass aborts', async () => {
      await eventually(() => a.app.hub.subscriberCount === 0 && a.app.streams.size === 0, 5000, 'earlier streams to close');
      const clients = Array.from({ length: 200 }, (_, index) => new StreamClient(on(a, `/stream?channel=mass${index % 7}&channel=mass`)));
      await Promise.all(clients.map((client) => client.opened()));
      assert.equal(a.app.hub.subscriberCount, 200);
      for (const client of clients) client.abort();
      await eventually(() => a.app.hub.subscriberCount === 0 && a.app.streams.size === 0, 5000, 'all to close');
      assert.equal(a.app.streams.heartbeatRunning, false);
    });

    it('takes a subscriber once, and lets it leave more than once', () => {
      const subscriber = { write: () => true };
      const before = a.app.hub.subscriberCount;
      a.app.hub.subscribe(subscriber, { channels: ['once'] });
      // A second subscription would replace the first in the hub's books and leak it.
      assert.throws(() => a.app.hub.subscribe(subscriber, { channels: ['twice'] }), /subscribed already/);
      assert.deepEqual([a.app.hub.listenersOf('once'), a.app.hub.listenersOf('twice')], [1, 0]);
      a.app.hub.unsubscribe(subscriber);
      a.app.hub.unsubscribe(subscriber);
      assert.deepEqual([a.app.hub.listenersOf('once'), a.app.hub.subscriberCount], [0, before]);
    });

    it('reports counts in the Prometheus text format', async () => {
      const response = await fetch(on(a, '/metrics'));
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type')!, /^text\/plain; version=0.0.4/);
      const text = await response.text();
      assert.match(text, /^# TYPE sse_open_connections gauge$/m);
      assert.match(text, /^sse_events_published_total \d+$/m);
      assert.match(text, /^sse_events_delivered_total \d+$/m);
      assert.match(text, /^sse_clients_dropped_total\{reason="stalled"\} 0$/m);
    });
  });

  describe('who may publish', () => {
    it('refuses publishing from another machine when no key is set', async () => {
      const [node] = await backend.nodes({ clientAddress: () => '203.0.113.9' });
      const response = await post(new URL('/publish', node.url), { channel: 'a', data: 'x' });
      assert.equal(response.status, 403);
      assert.match((await jsonBody(response)).error, /PUBLISH_KEY/);
      // The chat stays public.
      assert.equal((await post(new URL('/messages', node.url), { channel: 'a', message: 'hi' })).status, 202);
    });

    it('with PUBLISH_KEY set, needs the key from everywhere, and accepts it from anywhere', async () => {
      const [node] = await backend.nodes({ publishKey: 's3cret', clientAddress: () => '203.0.113.9' });
      const url = new URL('/publish', node.url);
      const none = await post(url, { channel: 'a', data: 'x' });
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await post(url, { channel: 'a', data: 'x' }, { Authorization: 'Bearer wrong' })).status, 401);
      assert.equal((await post(url, { channel: 'a', data: 'x' }, { Authorization: 'Bearer s3cret' })).status, 202);
    });
  });
}
