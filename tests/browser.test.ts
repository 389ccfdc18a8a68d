import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoReply } from '../fake-upstream/behaviours';
import { eventually } from './support/harness';
import { freePort, npmRun } from './support/processes';

/**
 * The real thing: `npm run dev` serves the chat page, Debian's Chromium loads it, and `useChat` from
 * `@ai-sdk/react` (unchanged) streams a reply through the proxy from the demo upstream.
 */
let browser: Browser;

beforeAll(async () => {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(
      `The browser test needs Debian's Chromium at ${executablePath}: sudo apt-get install -y chromium (or set CHROMIUM_PATH).`,
    );
  }
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
afterAll(() => browser?.close());

async function openChat(env: Record<string, string> = {}): Promise<Page> {
  const port = await freePort();
  const dev = npmRun('dev', { PORT: String(port), ...env });
  await eventually(() => dev.output().stdout.includes('listening on'), 15_000);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  return page;
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#prompt', text);
  await page.click('#send');
}

describe('the chat page in Chromium', () => {
  it('streams a reply with useChat, unchanged, through the proxy', async () => {
    const page = await openChat();
    await send(page, 'Hello from a real browser');
    const assistant = page.locator('li[data-role="assistant"]');
    await assistant.waitFor({ timeout: 10_000 });
    // Streaming: the reply is visible while it is still being written...
    const partial = await assistant.textContent();
    expect(partial?.length ?? 0).toBeLessThan(`Assistant: ${demoReply('Hello from a real browser')}`.length);
    // ...and complete at the end, exactly.
    await page.waitForFunction(
      (expected) => document.querySelector('li[data-role="assistant"]')?.textContent === expected,
      `Assistant: ${demoReply('Hello from a real browser')}`,
      { timeout: 10_000 },
    );
    expect(await page.locator('#error').count()).toBe(0);
    await page.close();
  }, 40_000);

  it('shows the proxy’s friendly message when a request is refused', async () => {
    const page = await openChat({ RATE_LIMIT_REQUESTS: '1' });
    await send(page, 'first');
    await page.waitForFunction(
      () =>
        document.querySelector('#send:not([disabled])') &&
        document.querySelectorAll('li[data-role="assistant"]').length === 1,
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForFunction(() => !document.querySelector('#send[disabled]'), undefined, {
      timeout: 10_000,
    });
    await send(page, 'second');
    const error = page.locator('#error');
    await error.waitFor({ timeout: 10_000 });
    expect(await error.textContent()).toMatch(
      /^You are sending messages too quickly\. Please wait \d+ seconds? and try again\.$/,
    );
    await page.close();
  }, 40_000);
});
