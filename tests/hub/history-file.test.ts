import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startApp } from '../support/harness.ts';

describe('the history saved across a restart', () => {
  const damaged: Array<[string, string]> = [
    ['torn', '{"firstId":1764532800000,"lastId":17645'],
    ['wrongly shaped', '{"firstId":1,"lastId":2,"forgottenUpTo":0,"channels":"all of them"}'],
  ];
  for (const [damage, text] of damaged) {
    it(`moves a ${damage} history.json aside, names it in a warning, and starts with empty history`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'sse-history-'));
      const file = join(dataDir, 'history.json');
      writeFileSync(file, text);
      const logged: Array<Record<string, unknown>> = [];
      const running = await startApp({ dataDir, logger: (event, fields) => logged.push({ event, ...fields }) });

      const warning = logged.find((entry) => entry.event === 'history.corrupt');
      assert.deepEqual(warning && Object.keys(warning), ['event', 'file', 'movedTo'], JSON.stringify(logged));
      assert.equal(warning!.file, file);
      const movedTo = String(warning!.movedTo);
      assert.match(movedTo, /history\.json\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/);
      assert.equal(readFileSync(movedTo, 'utf8'), text, 'the damaged file is kept as it was');
      assert.equal(existsSync(file), false);
      assert.deepEqual(readdirSync(dataDir).filter((name) => name.startsWith('history')), [movedTo.slice(dataDir.length + 1)]);

      assert.equal(running.app.hub.channelCount, 0);
      const published = await fetch(new URL('/publish', running.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'after', data: 'fresh' }),
      });
      assert.equal(published.status, 202);
      await running.close();
    });
  }
});
