import assert from 'node:assert/strict';
import { connect } from 'node:net';
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
});
