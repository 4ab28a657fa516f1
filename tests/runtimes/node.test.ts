/** server.ts on the Node that runs npm, with tsx (npm start): the suite in ./suite.ts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { NODE_FLAGS } from '../support/server-process.ts';
import { describeRuntime } from './suite.ts';

describeRuntime('node');

// The tests and the bench start Node with NODE_FLAGS; what they measure is what npm start runs.
it('npm start (and start:dist, cluster, cluster:dist) passes Node the flags the suite and the bench run with', () => {
  const { scripts } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  for (const flag of NODE_FLAGS) {
    assert.ok(scripts['start']!.split(' ').includes(flag), `npm start (${scripts['start']}) lacks ${flag}`);
    assert.ok(scripts['cluster']!.split(' ').includes(flag), `npm run cluster (${scripts['cluster']}) lacks ${flag}`);
    assert.ok(scripts['start:dist']!.split(' ').includes(flag), `npm run start:dist (${scripts['start:dist']}) lacks ${flag}`);
    assert.ok(scripts['cluster:dist']!.split(' ').includes(flag), `npm run cluster:dist (${scripts['cluster:dist']}) lacks ${flag}`);
  }
});
