/**
 * server.ts on Deno 2 (deno run with the permissions the server needs): the suite in
 * ./suite.ts, and the one thing Deno's permissions change for a reader.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { startServerProcess } from '../support/server-process.ts';
import { RUNTIMES } from './runtimes.ts';
import { describeRuntime, skipReason } from './suite.ts';

describeRuntime('deno');

const deno = RUNTIMES.find((runtime) => runtime.id === 'deno')!;

describe(`the status monitor on ${deno.name}`, { skip: skipReason(deno), timeout: 120_000 }, () => {
  it(`${deno.name}: probes an https target with --allow-sys, and says NotCapable without it (README)`, async () => {
    // A port that refuses: with the permission, the probe gets as far as connecting.
    const closed = createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const monitorUrl = `https://127.0.0.1:${(closed.address() as { port: number }).port}/`;
    closed.close();
    for (const [extra, expected] of [[[], 'NotCapable'], [['--allow-sys'], 'ECONNREFUSED']] as const) {
      const command = deno.command();
      // Just before the script, with the other permissions.
      command.splice(command.length - 1, 0, ...extra);
      const server = await startServerProcess({ command, env: { ...deno.env, MONITOR_URL: monitorUrl } });
      try {
        const result = (await (await fetch(new URL('/request_status', server.url))).json()) as { status: number; error?: string };
        assert.deepEqual([result.status, result.error], [0, expected], `with ${['deno run', ...extra].join(' ')}`);
      } finally {
        assert.equal(await server.stop(), 0, server.log());
      }
    }
  });
});
