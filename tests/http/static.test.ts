import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { jsonBody, startApp } from '../support/harness.ts';

/** Sends a raw request line, untouched by any URL normaliser, and returns the status code. */
async function rawStatus(port: number, target: string): Promise<{ status: number; text: string }> {
  const socket = connect(port, '127.0.0.1');
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  return { status: Number(text.split(' ')[1]), text };
}

describe('static files from public/', async () => {
  const running = await startApp();
  after(() => running.close());
  const port = Number(running.url.port);

  it('serves the page at / with an HTML content type', async () => {
    const response = await fetch(running.url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await response.text(), /<html/);
  });

  it('answers HEAD with headers only', async () => {
    const response = await fetch(running.url, { method: 'HEAD' });
    assert.equal(response.status, 200);
    assert.ok(Number(response.headers.get('content-length')) > 0);
  });

  it('answers 404 with a JSON error for a missing file', async () => {
    const response = await fetch(new URL('/nope.html', running.url));
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.match((await jsonBody(response)).error, /No such file/);
  });

  it('answers 404, not 500, for a name longer than a file name may be', async () => {
    const { status, text } = await rawStatus(port, `/${'a'.repeat(300)}`);
    assert.equal(status, 404);
    assert.match(text, /No such file/);
  });

  it('serves a file asked for in absolute form, as a client talking to a proxy sends it', async () => {
    for (const target of ['http://localhost/index.html', 'http://localhost', 'HTTP://localhost:80/?x=1']) {
      const { status, text } = await rawStatus(port, target);
      assert.equal(status, 200, target);
      assert.match(text, /<html/, target);
    }
    for (const target of ['http://localhost/../package.json', 'http://localhost//etc/passwd', 'http://localhost/%2e%2e/package.json']) {
      const { status, text } = await rawStatus(port, target);
      assert.equal(status, 400, target);
      assert.doesNotMatch(text, /"devDependencies"|root:x:0/, `${target} leaked a file`);
    }
  });

  it('refuses traversal in every spelling, and never leaks a file outside public/', async () => {
    const attempts = [
      '/../package.json',
      '/../../etc/passwd',
      '/%2e%2e/package.json',
      '/%2E%2E%2Fpackage.json',
      '/..%2fpackage.json',
      '/..%5cpackage.json',
      '/.%2e/server.ts',
      '//etc/passwd',
      '/./index.html',
      '/%00index.html',
      '/%E0%A4%A',
      '/C:%5cWindows',
    ];
    for (const target of attempts) {
      const { status, text } = await rawStatus(port, target);
      assert.ok(status === 400 || status === 404, `${target} answered ${status}`);
      assert.doesNotMatch(text, /"devDependencies"|root:x:0|createApp/, `${target} leaked a file`);
    }
  });

  it('answers 405 for methods other than GET and HEAD', async () => {
    const response = await fetch(running.url, { method: 'DELETE' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
    assert.match((await jsonBody(response)).error, /DELETE/);
  });

  it('serves no dotfile and nothing reached through a symbolic link, as if they were not there', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sse-public-'));
    writeFileSync(join(root, 'index.html'), '<p>hi</p>');
    writeFileSync(join(root, '.env'), 'SECRET=1');
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, '.git', 'config'), '[core]');
    const outside = mkdtempSync(join(tmpdir(), 'sse-outside-'));
    writeFileSync(join(outside, 'secret.txt'), 'not for the web');
    symlinkSync(join(outside, 'secret.txt'), join(root, 'linked.txt'));
    symlinkSync(outside, join(root, 'linked-dir'));
    const own = await startApp({ publicDir: root });
    try {
      assert.equal((await fetch(own.url)).status, 200);
      for (const path of ['/.env', '/.git/config', '/linked.txt', '/linked-dir/secret.txt']) {
        const response = await fetch(new URL(path, own.url));
        assert.equal(response.status, 404, path);
        assert.doesNotMatch(await response.text(), /SECRET|not for the web|core/);
      }
    } finally {
      await own.close();
    }
  });
});
