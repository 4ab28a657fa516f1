/**
 * Headless Chromium for the page tests, from Debian's `chromium` package, driven by
 * playwright-core (which never downloads a browser of its own).
 *
 * Without Chromium the page tests are skipped with a message, so `npm test` still works on a
 * laptop; under CI (CI set) a missing browser is a failure, because CI installs it.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = [process.env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];

export const chromiumPath = CANDIDATES.find((path): path is string => path !== undefined && existsSync(path));

/** The reason to skip browser tests here, or false when they must run. */
export const skipBrowser: string | false =
  chromiumPath === undefined && !process.env['CI']
    ? 'Chromium not found (apt-get install chromium, or set CHROMIUM_PATH): browser tests skipped'
    : false;

export async function launchBrowser(): Promise<Browser> {
  if (chromiumPath === undefined) throw new Error('Chromium is required under CI but was not found');
  return chromium.launch({
    executablePath: chromiumPath,
    // No sandbox as root in CI; no background networking, which this closed network refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
