import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { jsonBody, startApp, StreamClient } from '../support/harness.ts';

/** Listens on a free loopback port; the URL the monitor is given names it, with `protocol`. */
async function listen(server: NetServer, protocol = 'http:'): Promise<URL> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return new URL(`${protocol}//127.0.0.1:${(server.address() as { port: number }).port}/`);
}

describe('the status monitor', async () => {
  let probes = 0;
  let userAgent: string | undefined;
  const target = createServer((req, res) => {
    probes += 1;
    userAgent = req.headers['user-agent'];
    res.writeHead(418).end('teapot');
  });
  const targetUrl = await listen(target);
  const silent = createServer(() => {}); // accepts, never answers
  const silentUrl = await listen(silent);
  after(() => {
    target.close();
    silent.closeAllConnections();
    silent.close();
  });

  it('probes the configured target, answers with the result and publishes response_status', async () => {
    const running = await startApp({ monitorUrl: targetUrl });
    const client = new StreamClient(new URL('/stream', running.url));
    await client.opened();
    const response = await fetch(new URL('/request_status', running.url));
    assert.equal(response.status, 200);
    const result = await jsonBody(response);
    assert.equal(result.status, 418);
    assert.equal(typeof result.time, 'number');
    // Some firewalls and APIs refuse a request that does not say who sends it.
    assert.match(userAgent ?? '', /status monitor/);
    const [event] = await client.waitForEvents(1);
    assert.equal(event!.type, 'response_status');
    assert.deepEqual(JSON.parse(event!.data), result);
    await running.close();
  });

  it('never lets a request choose the URL it probes', async () => {
    const running = await startApp({ monitorUrl: targetUrl });
    const before = probes;
    const response = await fetch(new URL('/request_status?url=http://127.0.0.1:1/&target=http://169.254.169.254/', running.url));
    assert.equal((await jsonBody(response)).status, 418);
    assert.equal(probes, before + 1);
    await running.close();
  });

  it('reports a refused connection as status 0 with an error, not as a 500', async () => {
    const closed = createServer();
    const closedUrl = await listen(closed);
    closed.close();
    const running = await startApp({ monitorUrl: closedUrl });
    const response = await fetch(new URL('/request_status', running.url));
    assert.equal(response.status, 200);
    const result = await jsonBody(response);
    assert.equal(result.status, 0);
    assert.equal(result.error, 'ECONNREFUSED');
    await running.close();
  });

  it('reports a target that does not answer in time as a timeout', async () => {
    const running = await startApp({ monitorUrl: silentUrl, monitorTimeoutMs: 100 });
    const result = await jsonBody(await fetch(new URL('/request_status', running.url)));
    assert.deepEqual([result.status, result.error], [0, 'timeout']);
    assert.ok(result.time >= 0.09);
    await running.close();
  });

  it('probes on its own while someone listens, by default its built-in flaky endpoint', async () => {
    const running = await startApp({ monitorIntervalMs: 30 });
    const client = new StreamClient(new URL('/stream', running.url));
    const events = await client.waitForEvents(2, 10_000);
    for (const event of events.slice(0, 2)) {
      assert.equal(event.type, 'response_status');
      assert.ok([200, 503].includes(JSON.parse(event.data).status));
    }
    client.abort();
    await running.close();
  });

  it('reports a redirect as the redirect, without following it', async () => {
    const paths: string[] = [];
    const redirecting = createServer((req, res) => {
      paths.push(req.url!);
      res.writeHead(302, { Location: '/elsewhere' }).end();
    });
    const running = await startApp({ monitorUrl: await listen(redirecting) });
    const result = await jsonBody(await fetch(new URL('/request_status', running.url)));
    assert.equal(result.status, 302);
    assert.deepEqual(paths, ['/']);
    await running.close();
    redirecting.close();
  });

  it('takes the status of an answer that never ends, and drops its connection', async () => {
    const endless = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write(': the body goes on for ever\n\n');
    });
    // A timeout longer than the test's own bound, so only the probe itself can drop the connection.
    const running = await startApp({ monitorUrl: await listen(endless), monitorTimeoutMs: 60_000 });
    // The answer's 'close': it fires when the connection goes, as the answer itself never ends.
    const closed = once(endless, 'request').then(([, res]) => once(res, 'close', { signal: AbortSignal.timeout(5000) }));
    const result = await jsonBody(await fetch(new URL('/request_status', running.url)));
    assert.equal(result.status, 200);
    await closed;
    await running.close();
    endless.close();
  });

  it('speaks TLS to an https target', async () => {
    // A plain TCP listener: all it needs to see is the first byte, 0x16 for a TLS handshake.
    const firstBytes: number[] = [];
    const listener = createNetServer((socket) =>
      socket.once('data', (data) => {
        firstBytes.push(data[0]!);
        socket.destroy();
      }),
    );
    const running = await startApp({ monitorUrl: await listen(listener, 'https:') });
    const result = await jsonBody(await fetch(new URL('/request_status', running.url)));
    assert.deepEqual(firstBytes, [0x16]);
    assert.deepEqual([result.status, result.error], [0, 'ECONNRESET']);
    await running.close();
    listener.close();
  });

  it('reports a 101 answer as its status, and goes on probing', async () => {
    // Node's client hands a 101 to 'upgrade' listeners only, not to the answer's callback.
    let switching = true;
    const upgrading = createNetServer((socket) =>
      socket.once('data', () => {
        if (switching) socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: demo\r\n\r\n');
        else socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
      }),
    );
    // A timeout longer than the test's own bound: the probe must settle without it.
    const running = await startApp({ monitorUrl: await listen(upgrading), monitorTimeoutMs: 60_000 });
    const status = async () =>
      (await jsonBody(await fetch(new URL('/request_status', running.url), { signal: AbortSignal.timeout(5000) }))).status;
    assert.equal(await status(), 101);
    switching = false;
    assert.equal(await status(), 204);
    await running.close();
    upgrading.close();
  });
});
