import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, skipBrowser } from '../support/browser.ts';
import { eventually, startApp, type Running } from '../support/harness.ts';

if (skipBrowser) console.log(`# ${skipBrowser}`);

describe('the page in a real browser', { skip: skipBrowser }, () => {
  let running: Running;
  let browser: Browser;
  before(async () => {
    running = await startApp();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await running?.close();
  });

  it('shows all five sentences of /events, then the end', async () => {
    const page = await browser.newPage();
    await page.goto(new URL('/?interval=50', running.url).href);
    await page.waitForSelector('#paragraph-state[data-state="finished"]', { timeout: 10_000 });
    const sentences = await page.locator('#paragraph-sentences li').allTextContents();
    assert.equal(sentences.length, 5);
    assert.match(sentences[0]!, /^Server-Sent Events let a server push text/);
    await page.close();
  });

  it('chat: a message sent in one page appears in another that follows the channel, and nothing from other channels', async () => {
    const sender = await browser.newPage();
    const reader = await browser.newPage();
    for (const page of [sender, reader]) {
      await page.goto(new URL('/?interval=10000', running.url).href);
      await page.waitForSelector('#stream-state[data-state="open"]');
    }
    // The reader follows channel_bob only.
    await reader.uncheck('input[value="channel_public"]');
    await reader.click('#chat-follow button[type="submit"]');
    await reader.waitForSelector('#stream-state[data-state="open"]');
    await eventually(() => running.app.hub.subscriberCount === 2, 5000, 'the reader to resubscribe');

    const send = async (channel: string, message: string) => {
      await sender.fill('#chat-channel', channel);
      await sender.fill('#chat-message', message);
      const [response] = await Promise.all([
        sender.waitForResponse((candidate) => candidate.url().endsWith('/messages')),
        sender.click('#chat-form button[type="submit"]'),
      ]);
      assert.equal(response.status(), 202);
    };
    await send('channel_tom', 'for tom only');
    await send('channel_bob', '<img src=x onerror=alert(1)> hi bob');
    await reader.waitForSelector('#chat-log li');
    const log = await reader.locator('#chat-log li').allTextContents();
    // Tom's message was sent first; had it leaked, it would be here too.
    assert.deepEqual(log, ['channel_bob: <img src=x onerror=alert(1)> hi bob']);
    // Shown as text: the markup did not become an element.
    assert.equal(await reader.locator('#chat-log img').count(), 0);
    await sender.close();
    await reader.close();
  });

  it('every live panel updates: ticker, status monitor and a demo order through to delivery', async () => {
    const own = await startApp({ tickMs: 50, monitorIntervalMs: 50, courierMs: 50 });
    const page = await browser.newPage();
    await page.goto(new URL('/?interval=50', own.url).href);
    await page.waitForSelector('#paragraph-state[data-state="finished"]', { timeout: 10_000 });
    await page.waitForFunction('document.getElementById("ticker-clients").textContent === "1"');
    assert.notEqual(await page.textContent('#ticker-time'), 'waiting…');
    await page.waitForSelector('#status-log li');
    assert.match((await page.textContent('#status-code'))!, /^(200|503)$/);
    await page.click('#order-form button[type="submit"]');
    await page.waitForSelector('#order-steps[data-status="delivered"]', { timeout: 10_000 });
    const steps = await page.locator('#order-steps li').allTextContents();
    assert.deepEqual(
      steps.map((step) => step.split(' at ')[0]),
      ['created', 'paid', 'shipped', 'in transit', 'out for delivery', 'delivered'],
    );
    await page.close();
    await own.close();
  });
});
