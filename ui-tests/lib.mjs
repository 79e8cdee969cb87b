// What every browser script shares: Debian's Chromium, headless, on a fresh profile,
// bounded in time; screenshots into the workspace's target/ui-screenshots.
//
// A script is run as `node <script>.mjs <base-url>` (petshop/tests/ui does it against a
// pet shop it starts on 127.0.0.1) and exits 0 when every check passed.

import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** The whole script, browser start included, must finish within this. */
const SCRIPT_BUDGET_MS = 90_000;
/** One action or expectation. */
const STEP_TIMEOUT_MS = 10_000;

export const SCREENSHOTS =
  process.env.UI_SCREENSHOTS ?? fileURLToPath(new URL('../target/ui-screenshots/', import.meta.url));

const started = Date.now();

/** Prints one line, with the time since the script started. */
export function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

/** Fails the script with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  log(`ok: ${message}`);
}

/**
 * Runs `body({page, context, base, shot})` in a fresh headless Chromium against the
 * base URL given on the command line, then closes everything; exits non-zero on any
 * failure, on a page error, or when the budget runs out.
 */
export async function run(name, body) {
  const base = (process.argv[2] ?? '').replace(/\/$/, '');
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base)) {
    console.error(`usage: node ${name}.mjs http://127.0.0.1:<port> (loopback only)`);
    process.exit(2);
  }
  await mkdir(SCREENSHOTS, { recursive: true });
  const profile = await mkdtemp(join(tmpdir(), 'petshop-ui-'));
  // Playwright closes the browser when the process exits; the profile is ours to remove.
  const watchdog = setTimeout(() => {
    console.error(`${name}: over ${SCRIPT_BUDGET_MS / 1000} s, giving up`);
    rmSync(profile, { recursive: true, force: true });
    process.exit(3);
  }, SCRIPT_BUDGET_MS);
  watchdog.unref();
  let context;
  let failed = false;
  try {
    log(`${name}: launching ${CHROMIUM}`);
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    // Nothing leaves the machine: any request off the service's origin is refused.
    await context.route(
      (url) => url.origin !== base,
      (route) => {
        log(`blocked a request off the service: ${route.request().url()}`);
        return route.abort();
      },
    );
    const page = context.pages()[0] ?? (await context.newPage());
    /** Saves a screenshot of the whole page (`fullPage`), or of what the window shows. */
    const shot = async (file, { fullPage = true } = {}) => {
      const path = join(SCREENSHOTS, file);
      await page.screenshot({ path, fullPage });
      log(`screenshot: ${path}`);
    };
    await body({ page, context, base, shot });
    log(`${name}: passed`);
  } catch (e) {
    failed = true;
    console.error(`${name}: FAILED: ${e.stack ?? e}`);
    const page = context?.pages()[0];
    if (page) {
      const path = join(SCREENSHOTS, `${name}-failure.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`the page at the failure: ${path}`);
    }
  } finally {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
  process.exit(failed ? 1 : 0);
}

/** Collects console errors and uncaught exceptions of `page`. */
export function watchErrors(page) {
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return errors;
}
