import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SENTENCES } from '../../lib/demos/paragraph.ts';
import { jsonBody, startApp, StreamClient } from '../support/harness.ts';

describe('GET /events, the paragraph demo', async () => {
  const running = await startApp();
  after(() => running.close());
  const events = (query = '?interval=10') => new URL(`/events${query}`, running.url);

  it('streams five sentences with ids 1..5, then an end event, then closes', async () => {
    const client = new StreamClient(events());
    await client.waitForEnd();
    assert.deepEqual(
      client.events.map((event) => [event.type, event.lastEventId, event.data]),
      [
        ...SENTENCES.map((sentence, index) => ['message', String(index + 1), sentence]),
        ['end', '5', 'The paragraph is complete.'],
      ],
    );
  });

  it('resumes after Last-Event-ID at the next sentence', async () => {
    const client = new StreamClient(events(), { 'Last-Event-ID': '3' });
    await client.waitForEnd();
    assert.deepEqual(
      client.events.map((event) => event.lastEventId),
      ['4', '5', '5'],
    );
    assert.equal(client.events[0]!.data, SENTENCES[3]);
  });

  it('answers 204 once the paragraph is finished, so the browser stops reconnecting', async () => {
    const response = await fetch(events(), { headers: { 'Last-Event-ID': '5' } });
    assert.equal(response.status, 204);
    assert.equal(await response.text(), '');
  });

  it('refuses an invalid Last-Event-ID with a JSON 400', async () => {
    for (const id of ['6', '-1', 'abc', '1.5', '+1', '99999999999']) {
      const response = await fetch(events(), { headers: { 'Last-Event-ID': id } });
      assert.equal(response.status, 400, `Last-Event-ID ${JSON.stringify(id)}`);
      assert.match((await jsonBody(response)).error, /Last-Event-ID/);
    }
  });

  it('refuses an interval outside 10..10000 ms with a JSON 400', async () => {
    for (const interval of ['9', '10001', 'fast', '-5', '']) {
      const response = await fetch(events(`?interval=${interval}`));
      assert.equal(response.status, 400, `interval ${JSON.stringify(interval)}`);
      assert.match((await jsonBody(response)).error, /interval/);
    }
  });
});
