/**
 * Who may publish, as an attacker would probe it: DNS rebinding (a foreign name pointed at
 * 127.0.0.1), cross-site pages, a reverse proxy that forwards no usable client address, and
 * a TRUST_PROXY setting the server would misread.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../lib/http/config.ts';
import { startApp, type Running } from '../support/harness.ts';

/** A request with exactly the headers given (fetch will not let a caller set Host). */
function send(method: string, url: URL, path: string, headers: Record<string, string>, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const req = request(new URL(path, url), {
      method,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers },
    });
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.once('error', reject);
    req.end(text);
  });
}

const post = (url: URL, path: string, headers: Record<string, string>, body: unknown) => send('POST', url, path, headers, body);

describe('publishing from this machine (no PUBLISH_KEY)', () => {
  let running: Running;
  before(async () => {
    running = await startApp({ allowedHosts: ['sse.test'], allowedOrigins: ['https://app.example', '*'] });
  });
  after(() => running.close());
  const port = () => running.url.port;
  const publish = (headers: Record<string, string>) => post(running.url, '/publish', headers, { channel: 'access', data: 'x' });

  it('is trusted under a loopback Host name, or one listed in ALLOWED_HOSTS', async () => {
    for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`, `app.localhost:${port()}`, `[::1]:${port()}`, 'sse.test']) {
      assert.equal(await publish({ Host: host }), 202, host);
    }
  });

  it('is refused when the Host names another site: a DNS-rebinding page reaches loopback, but says whose it is', async () => {
    for (const host of [`rebind.evil.example:${port()}`, 'rebind.evil.example', `10.0.0.1:${port()}`, `localhost.evil.example`]) {
      assert.equal(await publish({ Host: host }), 403, host);
    }
    // The other publisher routes follow the same rule.
    assert.equal(await post(running.url, '/orders/ord_x/status', { Host: 'rebind.evil.example' }, { status: 'paid' }), 403);
    assert.equal(await send('GET', running.url, '/orders', { Host: 'rebind.evil.example' }, undefined), 403);
    assert.equal(await send('GET', running.url, '/orders', { Host: `localhost:${port()}` }, undefined), 200);
  });

  it('is refused to a page from another site, unless ALLOWED_ORIGINS names it (a wildcard does not)', async () => {
    const host = `127.0.0.1:${port()}`;
    assert.equal(await publish({ Host: host, Origin: 'https://evil.example' }), 403);
    assert.equal(await publish({ Host: host, Origin: 'null' }), 403);
    assert.equal(await publish({ Host: host, Origin: `http://${host}` }), 202);
    assert.equal(await publish({ Host: host, Origin: 'https://app.example' }), 202);
  });
});

describe('publishing with PUBLISH_KEY', () => {
  it('is still refused to a page from another site, key or not', async () => {
    const running = await startApp({ publishKey: 'k', clientAddress: () => '203.0.113.9' });
    const authorization = 'Bearer k';
    assert.equal(await post(running.url, '/publish', { Authorization: authorization }, { channel: 'c', data: 'x' }), 202);
    assert.equal(await post(running.url, '/publish', { Authorization: authorization, Origin: 'https://evil.example' }, { channel: 'c', data: 'x' }), 403);
    await running.close();
  });
});

describe('TRUST_PROXY with no usable X-Forwarded-For', () => {
  it('treats the client as unknown, never as the proxy on loopback', async () => {
    const running = await startApp({ trustProxy: true });
    for (const forwardedFor of [undefined, '', ' ', 'not-an-address', '203.0.113.5, ']) {
      const headers: Record<string, string> = forwardedFor === undefined ? {} : { 'X-Forwarded-For': forwardedFor };
      assert.equal(await post(running.url, '/publish', headers, { channel: 'c', data: 'x' }), 403, JSON.stringify(forwardedFor));
    }
    // A proxy that does forward a loopback client (a process on the proxy's own machine) is still trusted.
    assert.equal(await post(running.url, '/publish', { 'X-Forwarded-For': '127.0.0.1' }, { channel: 'c', data: 'x' }), 202);
    await running.close();
  });
});

describe('TRUST_PROXY in the environment', () => {
  it('takes 1, true, 0 and false, and stops the server at start on anything else, naming it', async () => {
    assert.equal(loadConfig({}).trustProxy, false);
    for (const [text, value] of [['1', true], ['true', true], ['0', false], ['false', false]] as const) {
      assert.equal(loadConfig({ TRUST_PROXY: text }).trustProxy, value, text);
    }
    // Read as "off", `yes` would count every client behind the proxy as one address.
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../server.ts', import.meta.url).pathname], {
      env: { ...process.env, PORT: '0', TRUST_PROXY: 'yes' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk));
    const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(20_000) })) as [number];
    assert.equal(code, 1, log);
    assert.match(log, /"event":"server.failed".*TRUST_PROXY must be 1, true, 0 or false, not \\"yes\\"/);
  });
});
