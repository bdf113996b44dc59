/**
 * Debian's Chromium driven by playwright-core, for the web UI tests.
 * Without /usr/bin/chromium a newcomer's `npm test` skips the browser suites
 * by name with the reason; with CI=true (`.ci/run` installs chromium) a
 * missing browser fails the run.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Test } from 'tap';
import { withService, type ServiceProbe } from '../helpers/services.ts';

export const CHROMIUM = '/usr/bin/chromium';

export function chromiumService(): ServiceProbe<string> {
  return {
    name: 'Chromium',
    value: existsSync(CHROMIUM) ? CHROMIUM : undefined,
    reason: `${CHROMIUM} is missing (apt-get install chromium)`,
  };
}

/** Runs `body` with Chromium available (skip / fail otherwise, see above). */
export function withChromium(t: Test, label: string, body: (t: Test) => Promise<void>): Promise<void> {
  return withService(t, chromiumService(), label, (tt) => body(tt));
}

/**
 * A fresh persistent context (its own --user-data-dir, so the Origin Private
 * File System and localStorage survive reloads like in a real profile),
 * closed and removed at teardown. The machines have no internet: every
 * background feature that would call out is off.
 */
export async function launchBrowser(t: Test, downloadsPath: string): Promise<BrowserContext> {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'bx-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    acceptDownloads: true,
    downloadsPath,
    viewport: { width: 1200, height: 900 },
    locale: 'fr-BE',
    timezoneId: 'Europe/Brussels',
  });
  t.teardown(async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  });
  return context;
}
