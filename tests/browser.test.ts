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
/** Where the screenshots go, to look at (ignored by git). */
const SCREENSHOTS = 'test-results/screenshots';

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
    // ...and complete at the end, exactly (the metadata line under it aside).
    await page.waitForFunction(
      (expected) => {
        const li = document.querySelector('li[data-role="assistant"]');
        const nodes = [...(li?.childNodes ?? [])].filter(
          (n) => !(n instanceof Element && n.matches('.meta')),
        );
        return nodes.map((n) => n.textContent).join('') === expected;
      },
      `Assistant: ${demoReply('Hello from a real browser')}`,
      { timeout: 10_000 },
    );
    expect(await page.locator('#error').count()).toBe(0);
    await assistant.locator('.meta').waitFor({ timeout: 10_000 });
    expect(await assistant.locator('.meta').textContent()).toMatch(/ · \d+ in · \d+ out$/);
    await page.close();
  }, 40_000);

  it('shows a reasoning model’s thinking, folded, and the model and token usage under the answer', async () => {
    const page = await openChat({ CHAT_MODEL: 'demo-reasoner' });
    await page.setViewportSize({ width: 1200, height: 800 });
    const prompt = 'Why is the sky blue? Pneumonoultramicroscopicsilicovolcanoconiosis';
    await send(page, prompt);
    const assistant = page.locator('li[data-role="assistant"]');
    const reasoning = assistant.locator('details.reasoning');
    // While the model thinks, the block is open and says so.
    await page.waitForFunction(
      () => document.querySelector('details.reasoning[open] summary')?.textContent === 'Thinking…',
      undefined,
      { timeout: 10_000 },
    );
    await page.screenshot({ path: `${SCREENSHOTS}/reasoning-thinking-1200.png`, fullPage: true });
    // Finished: the metadata line appears under the answer.
    const meta = assistant.locator('.meta');
    await meta.waitFor({ timeout: 10_000 });
    expect(await meta.textContent()).toMatch(/^demo-reasoner · \d+ in · \d+ out \(\d+ reasoning\)$/);
    expect(await reasoning.count()).toBe(1);
    expect(await reasoning.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
    expect(await reasoning.locator('summary').textContent()).toMatch(/^Thought for \d+ tokens$/);
    const thinking = await reasoning.locator('div').textContent();
    expect(thinking).toContain('Why is the sky blue?');
    expect(thinking).toContain('Let me think it through');
    expect(await assistant.locator('.text').textContent()).toBe(demoReply(prompt));
    expect(await page.locator('#error').count()).toBe(0);

    await page.screenshot({ path: `${SCREENSHOTS}/reasoning-folded-1200.png`, fullPage: true });
    await reasoning.locator('summary').click();
    expect(await reasoning.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    await page.screenshot({ path: `${SCREENSHOTS}/reasoning-1200.png`, fullPage: true });
    // A phone: the long word wraps instead of making the page scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}/reasoning-390.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SCREENSHOTS}/reasoning-390-dark.png`, fullPage: true });
    await page.close();
  }, 40_000);

  it('says when an answer was cut short by the length limit', async () => {
    const page = await openChat();
    // The demo always finishes its answer, so this reply is played to the page as the proxy would frame it.
    const chunks = [
      { type: 'start', messageId: 'cut-1', messageMetadata: { model: 'o3-mini' } },
      { type: 'reasoning-start', id: 'r' },
      { type: 'reasoning-delta', id: 'r', delta: 'Hmm.' },
      { type: 'reasoning-end', id: 'r' },
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: 'The answer is' },
      { type: 'text-end', id: 't' },
      {
        type: 'finish',
        finishReason: 'length',
        messageMetadata: {
          model: 'o3-mini',
          usage: { promptTokens: 1234, completionTokens: 1024, totalTokens: 2258 },
          finishReason: 'length',
        },
      },
    ];
    await page.route('**/api/chat', (route) =>
      route.fulfill({
        headers: { 'content-type': 'text/event-stream', 'x-vercel-ai-ui-message-stream': 'v1' },
        body: `${chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join('')}data: [DONE]\n\n`,
      }),
    );
    await send(page, 'Tell me everything');
    const meta = page.locator('li[data-role="assistant"] .meta');
    await meta.waitFor({ timeout: 10_000 });
    expect(await meta.textContent()).toBe('o3-mini · 1,234 in · 1,024 out · stopped: length limit');
    expect(await page.locator('li[data-role="assistant"] summary').textContent()).toBe('Reasoning');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/length-limit-390.png`, fullPage: true });
    await page.close();
  }, 40_000);

  it('shows the proxy’s friendly message when a request is refused', async () => {
    // A day-long window: with a limit of 1, a minute boundary between the two sends would let the second through
    // (the sliding window weighs the previous window's single request down to 0).
    const page = await openChat({ RATE_LIMIT_REQUESTS: '1', RATE_LIMIT_WINDOW: '1 d' });
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
      /^You are sending messages too quickly\. Please wait \d+ (seconds?|minutes|hours) and try again\.$/,
    );
    await page.close();
  }, 40_000);
});
