import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, skipBrowser } from './browser.ts';
import { startApp, type Running } from './harness.ts';

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
});
