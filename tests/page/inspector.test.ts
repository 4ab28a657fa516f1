import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { SENTENCES } from '../../lib/demos/paragraph.ts';
import { launchBrowser, skipBrowser } from '../support/browser.ts';
import { eventually, jsonBody, startApp, type Running } from '../support/harness.ts';

if (skipBrowser) console.log(`# ${skipBrowser}`);

/** One line as the page's parser reports it (see public/inspector.js). */
interface ParsedLine {
  kind: 'field' | 'comment' | 'blank' | 'crlf-tail';
  text: string;
  eol: string;
  event?: { type: string; id: string; data: string };
  retry?: number;
  ignored?: string;
}

/** The parser class of public/inspector.js, a global of the page that `page.evaluate` can reach. */
declare class EventStreamParser {
  constructor(lastEventId?: string);
  lastEventId: string;
  push(bytes: Uint8Array): ParsedLine[];
  end(): { lines: ParsedLine[]; discarded: boolean };
}

/** The text of every raw line of the given kind, without its arrival time or line ending. */
async function rawLines(page: Page, kind = 'field'): Promise<string[]> {
  return page.locator(`#inspector-raw li[data-kind="${kind}"] .text`).allTextContents();
}

/** The parsed events table as [type, id, data] rows (the time column left out). */
async function eventTable(page: Page): Promise<string[][]> {
  return page.locator('#inspector-events tbody tr').evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].slice(1).map((cell) => cell.textContent ?? '')),
  );
}

async function openInspector(browser: Browser, running: Running, streamUrl: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(new URL('/inspector.html', running.url).href);
  await page.fill('#inspector-url', streamUrl);
  return page;
}

describe('the SSE inspector in a real browser', { skip: skipBrowser }, () => {
  let running: Running;
  let browser: Browser;
  before(async () => {
    // Short heartbeats, so an idle stream shows one quickly.
    running = await startApp({ heartbeatMs: 50 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await running?.close();
  });

  it('shows /events raw and parsed, then reconnects with Last-Event-ID 5, gets 204 and stops', async () => {
    const requests: Array<{ url: string; lastEventId: string | undefined }> = [];
    const record = (req: IncomingMessage) => {
      if (req.url?.startsWith('/events')) requests.push({ url: req.url, lastEventId: req.headers['last-event-id'] as string | undefined });
    };
    running.app.server.on('request', record);
    const page = await openInspector(browser, running, '/events?interval=50');
    // The reconnect comes after the server's `retry: 3000`, so allow for that wait.
    const noContent = page.waitForResponse(
      (response) => new URL(response.url()).pathname === '/events' && response.status() === 204,
      { timeout: 10_000 },
    );
    await page.click('#inspector-connect');

    await page.waitForSelector('#inspector-events tbody tr:nth-child(6)', { timeout: 5000 });
    assert.deepEqual(await eventTable(page), [
      ...SENTENCES.map((sentence, index) => ['message', String(index + 1), sentence]),
      // `end` has no id of its own: it reports the last id seen, as EventSource would.
      ['end', '5', 'The paragraph is complete.'],
    ]);
    const raw = await rawLines(page);
    for (const line of ['retry: 3000', 'id: 1', `data: ${SENTENCES[0]}`, 'id: 5', 'event: end']) {
      assert.ok(raw.includes(line), `raw view shows ${JSON.stringify(line)}`);
    }
    assert.deepEqual(
      await page.locator('#inspector-raw li[data-kind="field"] .eol').evaluateAll((marks) => [...new Set(marks.map((mark) => mark.textContent))]),
      ['\\n'],
      'every line ending is drawn, and this server ends lines with LF',
    );

    // The server closed after `end`: the inspector waits `retry` and comes back with id 5.
    await page.waitForSelector('#inspector-state[data-state="reconnecting"]');
    await page.waitForSelector('#inspector-raw li.note[data-kind="reconnect"]:has-text("Last-Event-ID: 5")');
    const response = await noContent;
    assert.equal(await response.request().headerValue('last-event-id'), '5');
    await page.waitForSelector('#inspector-raw li.note[data-kind="no-content"]');
    await page.waitForSelector('#inspector-state[data-state="closed"]');
    running.app.server.off('request', record);
    assert.deepEqual(requests, [
      { url: '/events?interval=50', lastEventId: undefined },
      { url: '/events?interval=50', lastEventId: '5' },
    ]);
    await page.close();
  });

  it('shows heartbeats as comments, and published markup as text', async () => {
    const page = await openInspector(browser, running, '/stream?channel=insp');
    await page.click('#inspector-connect');
    await page.waitForSelector('#inspector-state[data-state="open"]');
    await page.waitForSelector('#inspector-raw li.comment');
    assert.equal((await rawLines(page, 'comment'))[0], ': heartbeat');
    // The hub's first frame is a lone `id:`: it sets the last id and dispatches nothing.
    assert.match((await page.textContent('#inspector-last-id')) ?? '', /^\d+$/);
    assert.equal(await page.locator('#inspector-events tbody tr').count(), 0);

    const data = '<b>x</b> & more\nsecond line';
    const published = await fetch(new URL('/publish', running.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'insp', event: 'note', data }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(published.status, 202);
    const { id } = await jsonBody(published);

    await page.waitForSelector('#inspector-events tbody tr');
    assert.deepEqual(await eventTable(page), [['note', id, data]]);
    const raw = await rawLines(page);
    assert.ok(raw.includes('data: <b>x</b> & more') && raw.includes('data: second line'), 'one data line per line of data');
    // Text, not markup: no <b> element was created anywhere.
    assert.equal(await page.locator('b').count(), 0);

    await page.click('#inspector-disconnect');
    await page.waitForSelector('#inspector-state[data-state="closed"]');
    await eventually(() => running.app.streams.size === 0, 5000, 'the stream to close on the server');
    await page.close();
  });

  it('refuses a stream URL from another origin, with a visible message', async () => {
    const page = await openInspector(browser, running, 'http://example.com/stream');
    await page.click('#inspector-connect');
    await page.waitForSelector('#inspector-error:has-text("only this page\'s origin")');
    assert.equal(await page.getAttribute('#inspector-state', 'data-state'), 'closed');
    assert.equal(await page.locator('#inspector-raw li').count(), 0);
    await page.close();
  });

  it('stops with a visible error on a non-200 answer or a body that is not an event stream', async () => {
    const page = await openInspector(browser, running, '/events?interval=5');
    await page.click('#inspector-connect');
    await page.waitForSelector('#inspector-error:has-text("HTTP 400")');
    await page.waitForSelector('#inspector-state[data-state="closed"]');

    await page.fill('#inspector-url', '/healthz');
    await page.click('#inspector-connect');
    await page.waitForSelector('#inspector-error:has-text("not text/event-stream")');
    await page.waitForSelector('#inspector-state[data-state="closed"]');
    assert.equal(await page.locator('#inspector-raw li.note[data-kind="reconnect"]').count(), 0, 'no reconnect after either');
    await page.close();
  });

  it('parses by the spec: BOM, CR and CRLF split across chunks, UTF-8 split across chunks, bad fields', async () => {
    const page = await browser.newPage();
    await page.goto(new URL('/inspector.html', running.url).href);
    const text =
      '\uFEFFdata: first\r\ndata:  two spaces\r\nid: 7\nid: b\0ad\nretry: 12a\nretry: 250\n: a comment\n' +
      'event: greet\ndata: café\nwhat\ndata\n\ndata: next\r\rid: 8\n\ndata: unfinished';
    const bytes = Buffer.from(text);
    const cuts = [
      1, // inside the byte order mark
      bytes.indexOf('first\r') + 'first\r'.length, // between the CR and the LF of a CRLF
      bytes.indexOf('é') + 1, // between the two bytes of é
      bytes.indexOf('next\r') + 'next\r'.length, // after a lone CR that is followed by another CR
    ];
    const chunks = [0, ...cuts].map((start, index) => [...bytes.subarray(start, cuts[index] ?? bytes.length)]);

    const result = await page.evaluate((input) => {
      const parser = new EventStreamParser();
      const lines = input.flatMap((chunk) => parser.push(new Uint8Array(chunk)));
      const { lines: rest, discarded } = parser.end();
      return { lines: [...lines, ...rest], discarded, lastEventId: parser.lastEventId };
    }, chunks);

    assert.deepEqual(
      result.lines.map((line) => `${line.kind} ${JSON.stringify(line.text)}`),
      [
        'field "data: first"',
        'crlf-tail ""', // not a blank line: the event is not dispatched early
        'field "data:  two spaces"',
        'field "id: 7"',
        'field "id: b\\u0000ad"',
        'field "retry: 12a"',
        'field "retry: 250"',
        'comment ": a comment"',
        'field "event: greet"',
        'field "data: café"',
        'field "what"',
        'field "data"',
        'blank ""',
        'field "data: next"',
        'blank ""',
        'field "id: 8"',
        'blank ""',
      ],
    );
    assert.deepEqual(
      result.lines.flatMap((line) => (line.event ? [line.event] : [])),
      [
        { type: 'greet', id: '7', data: 'first\n two spaces\ncafé\n' },
        { type: 'message', id: '7', data: 'next' },
      ],
    );
    assert.deepEqual(result.lines.filter((line) => line.retry !== undefined).map((line) => line.retry), [250]);
    assert.deepEqual(result.lines.filter((line) => line.ignored).map((line) => line.text), ['id: b\0ad', 'retry: 12a', 'what']);
    assert.equal(result.lastEventId, '8', 'a lone id: moves the last id without an event');
    assert.equal(result.discarded, true, 'an event without its blank line is never dispatched');
    await page.close();
  });
});
