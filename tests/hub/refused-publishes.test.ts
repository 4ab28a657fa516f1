/**
 * Publishes that cannot be delivered as asked are refused with a 400 before anything is
 * stored, never answered with a 500 and never sent out altered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jsonBody, startApp, type Running } from '../support/harness.ts';

describe('a publish that cannot be framed as sent', () => {
  let running: Running;
  before(async () => {
    running = await startApp();
  });
  after(() => running.close());

  /** Posts raw JSON text, so a test can send what JSON.stringify would never produce. */
  const publishText = (text: string) =>
    fetch(new URL('/publish', running.url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text });

  it('is refused with 400 and stores nothing: an empty event type, or a lone surrogate in data or event', async () => {
    const before = running.app.hub.lastId;
    const cases: Array<[string, RegExp]> = [
      ['{"channel":"c","event":"","data":"x"}', /event type is empty/],
      ['{"channel":"c","data":"half \\ud83d of an emoji"}', /lone surrogate/],
      ['{"channel":"c","event":"\\udc00","data":"x"}', /lone surrogate/],
    ];
    for (const [text, message] of cases) {
      const response = await publishText(text);
      assert.equal(response.status, 400, text);
      assert.match((await jsonBody(response)).error, message);
    }
    assert.equal(running.app.hub.lastId, before);
    // A whole emoji (a surrogate pair) is fine.
    assert.equal((await publishText('{"channel":"c","data":"\\ud83d\\ude00"}')).status, 202);
  });

  it('is refused with 400 when the JSON nests deeper than any honest body, instead of overflowing the stack', async () => {
    const deep = (levels: number) => `{"channel":"c","data":${'['.repeat(levels)}${']'.repeat(levels)}}`;
    for (const levels of [100, 5000, 30_000]) {
      const response = await publishText(deep(levels));
      assert.equal(response.status, 400, `${levels} levels`);
      assert.match((await jsonBody(response)).error, /nested deeper than 32 levels/);
    }
    // Brackets inside strings are text, not nesting.
    assert.equal((await publishText(`{"channel":"c","data":"${'['.repeat(1000)}"}`)).status, 202);
    assert.equal((await publishText(deep(30))).status, 202);
  });
});
