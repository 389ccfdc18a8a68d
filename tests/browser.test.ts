import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../fake-upstream';
import { demoReply } from '../fake-upstream/behaviours';
import { eventually, TEST_KEY } from './support/harness';
import { freePort, npmRun, SERVER_START_MS } from './support/processes';

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
  await eventually(() => dev.output().stdout.includes('listening on'), SERVER_START_MS);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  return page;
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#prompt', text);
  await page.click('#send');
}

/** Waits until `count` answers are complete (each has its metadata line) and the page is ready to send again. */
async function answered(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) =>
      document.querySelectorAll('li[data-role="assistant"]:not([aria-busy]) .meta').length === n &&
      !document.querySelector('#send[disabled]'),
    count,
    { timeout: 10_000 },
  );
}

/** The parts of a useChat request body the tests look at. */
interface SentBody {
  messages: {
    role: string;
    parts: { type: string; text?: string; mediaType?: string; url?: string; filename?: string }[];
  }[];
  trigger: string;
  model?: string;
}

/** What the page sent to /api/chat, for each request it made from now on. */
function chatBodies(page: Page): SentBody[] {
  const bodies: SentBody[] = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/api/chat') && request.method() === 'POST')
      bodies.push(request.postDataJSON());
  });
  return bodies;
}

const lastReply = (page: Page) => page.locator('li[data-role="assistant"]').last();

/** A real 1×1 PNG, small enough to read in a failure message. */
const DOT_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const DOT_PNG = Buffer.from(DOT_PNG_BASE64, 'base64');
const DOT_PNG_URL = `data:image/png;base64,${DOT_PNG_BASE64}`;

/** The next POST to /api/chat, as the page sent it. */
async function nextChatBody(page: Page, action: () => Promise<void>): Promise<SentBody> {
  const request = page.waitForRequest((r) => r.url().endsWith('/api/chat') && r.method() === 'POST');
  await action();
  return (await request).postDataJSON();
}

/** Pastes a PNG into the input as the clipboard would, or drops it onto the composer. */
function hand(page: Page, how: 'paste' | 'drop', name: string): Promise<void> {
  return page.evaluate(
    ({ base64, how, name }) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], name, { type: 'image/png' }));
      const init = { bubbles: true, cancelable: true };
      if (how === 'paste') {
        document
          .querySelector('#prompt')
          ?.dispatchEvent(new ClipboardEvent('paste', { ...init, clipboardData: data }));
      } else {
        const form = document.querySelector('form');
        form?.dispatchEvent(new DragEvent('dragover', { ...init, dataTransfer: data }));
        form?.dispatchEvent(new DragEvent('drop', { ...init, dataTransfer: data }));
      }
    },
    { base64: DOT_PNG_BASE64, how, name },
  );
}

describe('the chat page in Chromium', () => {
  it('streams a reply with useChat, unchanged, through the proxy', async () => {
    const page = await openChat();
    await send(page, 'Hello from a real browser');
    const assistant = page.locator('li[data-role="assistant"]');
    const text = assistant.locator('.text');
    await text.waitFor({ timeout: 10_000 });
    // Streaming: the reply is visible while it is still being written...
    const partial = await text.textContent();
    expect(partial?.length ?? 0).toBeLessThan(demoReply('Hello from a real browser').length);
    // ...and complete at the end, exactly.
    await page.waitForFunction(
      (expected) => document.querySelector('li[data-role="assistant"] .text')?.textContent === expected,
      demoReply('Hello from a real browser'),
      { timeout: 10_000 },
    );
    expect(await page.locator('#error').count()).toBe(0);
    await assistant.locator('.meta').waitFor({ timeout: 10_000 });
    expect(await assistant.locator('.meta').textContent()).toMatch(/ · \d+ in · \d+ out$/);
    // One model allowed (the default): nothing to pick.
    expect(await page.locator('#model').count()).toBe(0);
    await page.close();
  }, 40_000);

  it('shows what each answer cost under it, from a prices file the dev server read', async () => {
    // USD per million tokens for the demo model, given the way an operator would on the Node server.
    const dir = mkdtempSync(join(tmpdir(), 'prices-'));
    const prices = join(dir, 'prices.json');
    writeFileSync(prices, JSON.stringify({ demo: { input: 30, output: 60 } }));
    const page = await openChat({ MODEL_PRICES_FILE: prices });
    rmSync(dir, { recursive: true, force: true }); // read once, at start
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [i, prompt] of [
      'What does this cost?',
      'And a longer question, to cost a little more?',
    ].entries()) {
      await send(page, prompt);
      await answered(page, i + 1);
      const meta = (await lastReply(page).locator('.meta').textContent()) ?? '';
      const [, input = '', output = '', dollars = ''] =
        /^demo · (\d+) in · (\d+) out · \$([\d.]+)$/.exec(meta) ?? [];
      expect(meta).toMatch(/^demo · \d+ in · \d+ out · \$[\d.]+$/);
      // The page shows two significant digits of what the usage implies at those prices.
      const implied = (Number(input) * 30 + Number(output) * 60) / 1_000_000;
      expect(Number(dollars)).toBe(Number(implied.toPrecision(2)));
    }
    await page.screenshot({ path: `${SCREENSHOTS}/cost-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.screenshot({ path: `${SCREENSHOTS}/cost-1200.png`, fullPage: true });
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
    // The refused message can be taken back: the conversation is as it was before it.
    await page.locator('.error button', { hasText: 'Remove' }).click();
    expect(await page.locator('#error').count()).toBe(0);
    expect(await page.locator('li[data-role="user"] .text').allTextContents()).toEqual(['first']);
    await page.close();
  }, 40_000);

  it('renders the answer’s markdown as it streams, and nothing in it runs or loads', async () => {
    const page = await openChat();
    const said = [
      'Here is the code:',
      '```js',
      'const answer = 42;',
      '```',
      'See [the docs](https://example.com/docs) and <img src="/nothing.png" onerror="window.pwned = true">',
      'and one more line, so the block is there a while before the end.',
    ].join('\n');
    await send(page, said);
    // An unclosed fence is a code block already, while the reply is still streaming.
    await page.waitForFunction(
      () =>
        document
          .querySelector('li[data-role="assistant"][aria-busy] pre code')
          ?.textContent?.includes('const'),
      undefined,
      { timeout: 10_000, polling: 10 },
    );
    await answered(page, 1);
    const reply = lastReply(page);
    expect(await reply.locator('pre code').textContent()).toBe('const answer = 42;\n');
    const link = reply.locator('a', { hasText: 'the docs' });
    expect(await link.getAttribute('href')).toBe('https://example.com/docs');
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
    // The model's HTML is shown as text, never made into elements.
    expect(await reply.locator('img').count()).toBe(0);
    expect(await reply.locator('.text').textContent()).toContain('<img src="/nothing.png"');
    expect(await page.evaluate(() => 'pwned' in window)).toBe(false);
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}/markdown-390.png`, fullPage: true });
    await page.close();
  }, 40_000);

  it('stops a reply on Stop and marks it stopped; Regenerate answers again', async () => {
    const page = await openChat();
    const bodies = chatBodies(page);
    await send(page, 'Tell me a long story');
    await page.locator('li[data-role="assistant"] .text').waitFor({ timeout: 10_000 });
    await page.click('#stop');
    const reply = lastReply(page);
    await reply.locator('.stopped').waitFor({ timeout: 10_000 });
    expect(await reply.locator('.stopped').textContent()).toMatch(/stopped$/);
    const cut = await reply.locator('.text').textContent();
    expect(cut?.length ?? 0).toBeLessThan(demoReply('Tell me a long story').length);
    await page.waitForTimeout(500); // nothing more arrives once stopped
    expect(await reply.locator('.text').textContent()).toBe(cut);
    await page.screenshot({ path: `${SCREENSHOTS}/stopped-1200.png`, fullPage: true });

    await reply.locator('button', { hasText: 'Regenerate' }).click();
    await answered(page, 1);
    expect(await page.locator('li[data-role="assistant"]').count()).toBe(1);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply('Tell me a long story'));
    expect(await lastReply(page).locator('.stopped').count()).toBe(0);
    expect(bodies.map((b) => b.trigger)).toEqual(['submit-message', 'regenerate-message']);
    // The regenerated request carries the conversation without the stopped answer.
    expect(bodies[1]?.messages.map((m) => m.role)).toEqual(['user']);
    await page.close();
  }, 40_000);

  it('lets a refused message be edited or replaced, so it never fails the turns after it', async () => {
    const page = await openChat({ MAX_MESSAGE_CHARS: '200' });
    const bodies = chatBodies(page);
    await send(page, 'hi');
    await answered(page, 1);
    const tooLong = `${'far too long '.repeat(20)}end`;
    await send(page, tooLong);
    await page.locator('#error').waitFor({ timeout: 10_000 });
    expect(await page.locator('#error').textContent()).toMatch(/too long \(at most 200 characters\)/);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/refused-390.png`, fullPage: true });

    // Edit: the words go back into the input and out of the conversation.
    await page.locator('.error button', { hasText: 'Edit' }).click();
    expect(await page.inputValue('#prompt')).toBe(tooLong);
    expect(await page.locator('li[data-role="user"]').count()).toBe(1);
    expect(await page.locator('#error').count()).toBe(0);
    await send(page, 'a shorter one');
    await answered(page, 2);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply('a shorter one'));

    // Or just send something else: the refused message is replaced, not sent again under the new one.
    await send(page, tooLong);
    await page.locator('#error').waitFor({ timeout: 10_000 });
    await send(page, 'and another');
    await answered(page, 3);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply('and another'));
    expect(await page.locator('#error').count()).toBe(0);
    const sentAfterwards = bodies.slice(-1).flatMap((b) => b.messages.flatMap((m) => m.parts));
    expect(sentAfterwards.some((part) => part.text?.includes('far too long'))).toBe(false);
    expect(await page.locator('li[data-role="user"] .text').allTextContents()).toEqual([
      'hi',
      'a shorter one',
      'and another',
    ]);
    await page.close();
  }, 60_000);

  it('sends on Enter, breaks the line on Shift+Enter, edits the last message, and starts a new chat', async () => {
    const page = await openChat();
    const bodies = chatBodies(page);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.locator('.hint').waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/empty-390-dark.png` });
    await page.click('#prompt');
    await page.keyboard.type('line one');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('line two');
    expect(await page.inputValue('#prompt')).toBe('line one\nline two');
    expect(bodies).toHaveLength(0);
    await page.keyboard.press('Enter');
    await answered(page, 1);
    expect(await page.inputValue('#prompt')).toBe('');
    expect(await page.locator('li[data-role="user"] .text').textContent()).toBe('line one\nline two');

    // Edit and resend the last message: it comes back into the input, its answer goes.
    await page.locator('li[data-role="user"] button', { hasText: 'Edit' }).click();
    expect(await page.inputValue('#prompt')).toBe('line one\nline two');
    expect(await page.locator('#messages li').count()).toBe(0);
    await page.fill('#prompt', 'line one, edited');
    await page.keyboard.press('Enter');
    await answered(page, 1);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply('line one, edited'));
    expect(bodies.at(-1)?.messages).toHaveLength(1);

    await page.click('#new-chat');
    expect(await page.locator('#messages li').count()).toBe(0);
    await page.locator('.hint').waitFor();
    await send(page, 'fresh start');
    await answered(page, 1);
    expect(bodies.at(-1)?.messages).toHaveLength(1);
    await page.close();
  }, 40_000);

  it('attaches an image from the picker, previews it, sends it as a file part and shows it in the message', async () => {
    const page = await openChat();
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.setInputFiles('#attach-input', { name: 'dot.png', mimeType: 'image/png', buffer: DOT_PNG });
    const preview = page.locator('.previews img');
    await preview.waitFor({ timeout: 5_000 });
    expect(await preview.getAttribute('alt')).toBe('dot.png');
    expect(await preview.getAttribute('src')).toBe(DOT_PNG_URL);
    await page.fill('#prompt', 'What is in this picture?');
    await page.screenshot({ path: `${SCREENSHOTS}/attach-preview-1200.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/attach-preview-390.png`, fullPage: true });

    const body = await nextChatBody(page, () => page.click('#send'));
    const parts = body.messages.at(-1)?.parts;
    expect(parts?.map((part) => part.type)).toEqual(['file', 'text']);
    expect(parts?.[0]).toEqual({
      type: 'file',
      mediaType: 'image/png',
      filename: 'dot.png',
      url: DOT_PNG_URL,
    });
    await answered(page, 1);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply('What is in this picture?'));
    expect(await page.locator('#error').count()).toBe(0);
    // Sent: out of the composer, into the conversation, and really shown (decoded, not a broken image).
    expect(await page.locator('.previews img').count()).toBe(0);
    const thumbnail = page.locator('li[data-role="user"] .files img');
    expect(await thumbnail.count()).toBe(1);
    expect(await thumbnail.getAttribute('src')).toBe(DOT_PNG_URL);
    expect(await thumbnail.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}/attach-sent-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.screenshot({ path: `${SCREENSHOTS}/attach-sent-1200.png`, fullPage: true });
    await page.close();
  }, 40_000);

  it('refuses what the proxy would refuse, and at most 4 images, saying why', async () => {
    const page = await openChat();
    const notice = page.locator('#attach-notice');
    await page.setInputFiles('#attach-input', [
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') },
      { name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(5 * 1024 * 1024 + 1) },
    ]);
    await notice.waitFor({ timeout: 5_000 });
    expect(await notice.textContent()).toBe(
      'notes.txt is not a PNG, JPEG, WebP or GIF image. huge.png is larger than 5 MiB.',
    );
    expect(await page.locator('.previews img').count()).toBe(0);
    const five = Array.from({ length: 5 }, (_, i) => ({
      name: `dot-${i + 1}.png`,
      mimeType: 'image/png',
      buffer: DOT_PNG,
    }));
    await page.setInputFiles('#attach-input', five);
    await page.waitForFunction(() => document.querySelectorAll('.previews img').length === 4, undefined, {
      timeout: 5_000,
    });
    expect(await notice.textContent()).toBe('At most 4 images per message.');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/attach-four-390.png`, fullPage: true });
    // Removing one makes room for one more.
    await page.locator('.previews button', { hasText: '×' }).first().click();
    expect(await page.locator('.previews img').count()).toBe(3);
    expect(await page.locator('.previews img').first().getAttribute('alt')).toBe('dot-2.png');
    await page.close();
  }, 40_000);

  it('takes images pasted into the input or dropped on it, sends images alone, and Edit brings them back', async () => {
    const page = await openChat();
    await hand(page, 'paste', 'pasted.png');
    await hand(page, 'drop', 'dropped.png');
    await page.waitForFunction(() => document.querySelectorAll('.previews img').length === 2, undefined, {
      timeout: 5_000,
    });
    expect(
      await page.locator('.previews img').evaluateAll((imgs) => imgs.map((i) => i.getAttribute('alt'))),
    ).toEqual(['pasted.png', 'dropped.png']);
    expect(await page.inputValue('#prompt')).toBe('');
    // No words: a message of images alone, with no empty text part.
    const body = await nextChatBody(page, () => page.press('#prompt', 'Enter'));
    expect(body.messages.at(-1)?.parts.map((part) => [part.type, part.filename])).toEqual([
      ['file', 'pasted.png'],
      ['file', 'dropped.png'],
    ]);
    await answered(page, 1);
    expect(await lastReply(page).locator('.text').textContent()).toBe(demoReply(''));
    expect(await page.locator('li[data-role="user"] .files img').count()).toBe(2);
    expect(await page.locator('li[data-role="user"] .text').count()).toBe(0);
    await page.locator('li[data-role="user"] button', { hasText: 'Edit' }).click();
    expect(await page.locator('.previews img').count()).toBe(2);
    expect(await page.locator('#messages li').count()).toBe(0);
    await page.close();
  }, 40_000);

  it('offers the allowed models, and sends the one picked', async () => {
    const page = await openChat({ ALLOWED_MODELS: 'demo,demo-reasoner' });
    const bodies = chatBodies(page);
    const picker = page.locator('#model');
    await picker.waitFor({ timeout: 10_000 });
    expect(await picker.locator('option').allTextContents()).toEqual(['demo', 'demo-reasoner']);
    expect(await picker.inputValue()).toBe('demo');
    await picker.selectOption('demo-reasoner');
    await send(page, 'Think first');
    await answered(page, 1);
    expect(await lastReply(page).locator('details.reasoning').count()).toBe(1);
    expect(await lastReply(page).locator('.meta').textContent()).toMatch(/^demo-reasoner · /);
    expect(bodies[0]?.model).toBe('demo-reasoner');
    await page.close();
  }, 40_000);

  it('serves a favicon, and the model list with the usual headers', async () => {
    const page = await openChat({ ALLOWED_MODELS: 'demo,demo-reasoner' });
    expect(await page.locator('link[rel="icon"]').getAttribute('href')).toBe('/favicon.svg');
    for (const path of ['/favicon.svg', '/favicon.ico']) {
      const response = await page.request.get(new URL(path, page.url()).href);
      expect(response.status()).toBe(200);
      expect(response.headers()['content-type']).toBe('image/svg+xml');
      expect(await response.text()).toMatch(/^<svg /);
    }
    const models = await page.request.get(new URL('/api/models', page.url()).href);
    expect(models.status()).toBe(200);
    expect(await models.json()).toEqual({
      models: ['demo', 'demo-reasoner'],
      default: 'demo',
      resume: false,
    });
    expect(models.headers()['x-request-id']).toBeTruthy();
    expect(models.headers()['cache-control']).toBe('no-store');
    await page.close();
  }, 40_000);

  it('follows the reply as it streams, until the reader scrolls up, and again once they are back at the bottom', async () => {
    const page = await openChat();
    await page.setViewportSize({ width: 390, height: 600 });
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`);
    await send(page, lines.join('\n\n'));
    const atBottom = () =>
      page.evaluate(() => innerHeight + scrollY >= document.documentElement.scrollHeight - 10);
    const replyHas = (words: string) =>
      page.waitForFunction(
        (w) => document.querySelector('li[data-role="assistant"] .text')?.textContent?.includes(w),
        words,
        { timeout: 10_000, polling: 10 },
      );
    await replyHas('line 8');
    expect(await atBottom()).toBe(true);
    // Scrolled up to read: the page stays where the reader put it while the reply grows.
    await page.mouse.move(200, 300);
    await page.mouse.wheel(0, -400);
    await page.waitForTimeout(100);
    const readingAt = await page.evaluate(() => scrollY);
    await replyHas('line 20');
    expect(await page.evaluate(() => scrollY)).toBe(readingAt);
    expect(await atBottom()).toBe(false);
    // Back at the bottom: following again, to the end of the reply.
    await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
    await answered(page, 1);
    expect(await atBottom()).toBe(true);
    await page.close();
  }, 40_000);

  /** `npm run screenshots` writes this one to docs/screenshot.png for the README; `npm test` to test-results. */
  it('runs a client-side tool: the model calls get_time, the page answers in the browser, the model reads it', async () => {
    const tools = [
      {
        name: 'get_time',
        description: 'The local time of the user.',
        parameters: { type: 'object', properties: {} },
      },
    ];
    const page = await openChat({ TOOLS: JSON.stringify(tools) });
    const bodies = chatBodies(page);
    await send(page, 'Use get_time please');
    // The demo upstream calls the tool the message names; useChat's onToolCall answers it with the local time.
    const tool = lastReply(page).locator('.tool');
    await tool.waitFor({ timeout: 10_000 });
    await page.waitForFunction(
      () => document.querySelector('.tool')?.getAttribute('data-state') === 'output-available',
      undefined,
      { timeout: 10_000 },
    );
    const line = (await tool.textContent()) ?? '';
    const time = /^🔧 get_time\(\{\}\) → (.+)$/.exec(line)?.[1];
    expect(time, line).toMatch(/\d{1,2}[:.]\d{2}[:.]\d{2}/);
    // sendAutomaticallyWhen sent the answer back on its own; the model's reply continues the same message.
    await page.waitForFunction(
      (expected) =>
        document.querySelector('li[data-role="assistant"]:not([aria-busy]) .text')?.textContent === expected,
      `The tool answered: ${time}`,
      { timeout: 10_000 },
    );
    await answered(page, 1);
    expect(await page.locator('li[data-role="assistant"]').count()).toBe(1);
    expect(await page.locator('#error').count()).toBe(0);
    expect(await tool.getAttribute('data-state')).toBe('output-available');
    expect(bodies).toHaveLength(2);
    const answer = bodies[1]?.messages.at(-1)?.parts.find((part) => part.type === 'tool-get_time');
    expect(answer).toMatchObject({ state: 'output-available', input: {}, output: time });
  });

  it('README screenshot: a reasoning model answering in markdown', async () => {
    const page = await openChat({ ALLOWED_MODELS: 'demo,demo-reasoner', CHAT_MODEL: 'demo-reasoner' });
    await page.setViewportSize({ width: 1200, height: 760 });
    await send(page, 'What is this?');
    await answered(page, 1);
    await send(
      page,
      [
        'Show me a loop in **TypeScript**:',
        '```ts',
        'for (const n of [1, 2, 3]) console.log(n);',
        '```',
        'Thanks!',
      ].join('\n'),
    );
    await answered(page, 2);
    expect(await lastReply(page).locator('pre code').count()).toBe(1);
    expect(await page.locator('details.reasoning').count()).toBe(2);
    const target = process.env.README_SCREENSHOT ?? `${SCREENSHOTS}/readme-1200.png`;
    mkdirSync(dirname(target), { recursive: true });
    await page.screenshot({ path: target });
    expect(statSync(target).size).toBeLessThan(200_000);
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SCREENSHOTS}/readme-1200-dark.png` });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}/readme-390-dark.png` });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: `${SCREENSHOTS}/readme-390.png` });
    await page.close();
  }, 40_000);
});

describe('resumable replies in Chromium (RESUME=on)', () => {
  // The upstream runs here, not inside the dev server, so the test sees every call it gets and whether it was aborted.
  let fake: FakeUpstream;
  beforeAll(async () => {
    fake = await startFakeUpstream({ apiKey: TEST_KEY, tokenDelayMs: 40 });
  });
  afterAll(() => fake?.close());
  /** Lets go of the reply the test held halfway, so no test leaves one waiting. */
  let release = () => {};
  beforeEach(() => fake.reset());
  afterEach(() => release());

  /** Forty numbered words: a repeated word would show a reply played twice. */
  const STORY = Array.from({ length: 40 }, (_, i) => `word${i + 1}`).join(' ');

  /** The story's first `afterTokens` words at once, then nothing (connection open) until the test calls `release`. */
  function holdStory(afterTokens: number): void {
    const until = new Promise<void>((resolve) => {
      release = resolve;
    });
    fake.script({ kind: 'pause', afterTokens, until, text: STORY });
  }

  const replyHas = (page: Page, words: string) =>
    page.waitForFunction(
      (w) => document.querySelector('li[data-role="assistant"] .text')?.textContent?.includes(w),
      words,
      { timeout: 10_000, polling: 10 },
    );

  const openResumable = () =>
    openChat({ RESUME: 'on', OPENAI_API_KEY: TEST_KEY, OPENAI_BASE_URL: fake.url, CHAT_MODEL: 'demo' });

  /** Each GET (resume) and DELETE (stop) of /api/chat/{chatId}/stream the page makes, with its answer's status. */
  function streamCalls(page: Page): { method: string; status: number; url: string }[] {
    const calls: { method: string; status: number; url: string }[] = [];
    page.on('response', (response) => {
      const request = response.request();
      if (/\/api\/chat\/[^/]+\/stream$/.test(request.url()))
        calls.push({ method: request.method(), status: response.status(), url: request.url() });
    });
    return calls;
  }

  const replyText = (page: Page) => page.locator('li[data-role="assistant"] .text').allTextContents();

  it('continues a reply after a reload, once, from the one upstream call', async () => {
    holdStory(5);
    const page = await openResumable();
    const calls = streamCalls(page);
    await send(page, 'Tell me a long story');
    await replyHas(page, 'word5');
    expect(await replyText(page)).toEqual(['word1 word2 word3 word4 word5']);
    // Kept in the page's storage: the user's message, never a reply halfway through.
    const kept = await page.evaluate(() =>
      Object.values(localStorage).map((v) => JSON.parse(v).messages.map((m: { role: string }) => m.role)),
    );
    expect(kept).toEqual([['user']]);

    await page.reload();
    // The conversation is back: the user's message was kept when it was sent, and the reply so far is replayed...
    await replyHas(page, 'word5');
    expect(await page.locator('li[data-role="user"] .text').allTextContents()).toEqual([
      'Tell me a long story',
    ]);
    expect(await page.locator('li[data-role="assistant"][aria-busy]').count()).toBe(1);
    expect(await replyText(page)).toEqual(['word1 word2 word3 word4 word5']);
    // ...and goes on live from there.
    release();
    await answered(page, 1);
    expect(await replyText(page)).toEqual([STORY]);
    expect(await page.locator('li[data-role="user"]').count()).toBe(1);
    expect(await page.locator('#error').count()).toBe(0);
    // useChat asked for the running reply; the reload did not stop the upstream, nor start another call.
    expect(calls.map((c) => [c.method, c.status])).toEqual([['GET', 200]]);
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]?.aborted).toBe(false);
    expect(fake.calls[0]?.tokensSent).toBe(40);

    await page.setViewportSize({ width: 1200, height: 800 });
    await page.screenshot({ path: `${SCREENSHOTS}/resumed-1200.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}/resumed-390.png`, fullPage: true });

    // Reloaded once the reply is done: the whole conversation, once; nothing is running to resume.
    await page.reload();
    await answered(page, 1);
    expect(await replyText(page)).toEqual([STORY]);
    expect(await page.locator('li[data-role="user"]').count()).toBe(1);
    await eventually(() => calls.length === 2, 5_000);
    expect(calls[1]).toMatchObject({ method: 'GET', status: 204 });
    expect(fake.calls).toHaveLength(1);

    // A new chat is a new id: nothing of the old one comes back after a reload.
    await page.click('#new-chat');
    await page.reload();
    await page.locator('.hint').waitFor({ timeout: 5_000 });
    expect(await page.locator('#messages li').count()).toBe(0);
    await page.close();
  }, 60_000);

  it('stops the upstream on Stop, which a dropped connection no longer does', async () => {
    holdStory(3);
    const page = await openResumable();
    const calls = streamCalls(page);
    await send(page, 'Tell me a long story');
    await replyHas(page, 'word3');
    const deleted = page.waitForResponse(
      (r) => r.request().method() === 'DELETE' && /\/stream$/.test(r.url()),
    );
    await page.click('#stop');
    const answer = await deleted;
    // (The page sends it `keepalive`, whose answer's body the browser does not hand to the test.)
    expect(answer.status()).toBe(200);
    await eventually(() => fake.calls[0]?.aborted === true, 5_000);
    // Stopped already: asked again, there is nothing left to stop.
    const again = await page.request.delete(answer.url());
    expect(await again.json()).toEqual({ stopped: false });
    release(); // too late: the upstream has gone
    expect(fake.calls[0]?.tokensSent).toBe(3);
    const reply = lastReply(page);
    await reply.locator('.stopped').waitFor({ timeout: 5_000 });
    const cut = (await replyText(page))[0] ?? '';
    expect(cut).toBe('word1 word2 word3');

    // After a reload the stopped reply is as it was left, still marked stopped, and nothing resumes.
    await page.reload();
    await reply.locator('.stopped').waitFor({ timeout: 5_000 });
    expect(await replyText(page)).toEqual([cut]);
    await eventually(() => calls.some((c) => c.method === 'GET'), 5_000);
    expect(calls.find((c) => c.method === 'GET')?.status).toBe(204);
    expect(fake.calls).toHaveLength(1);
    await page.close();
  }, 60_000);

  it('leaves resume off where the server does not say it is on (no /api/models, as on Vercel); Retry asks again', async () => {
    holdStory(3);
    const page = await openResumable();
    await page.route('**/api/models', (route) => route.fulfill({ status: 404, body: 'Not found' }));
    const calls = streamCalls(page);
    await page.reload(); // now without the model list
    await send(page, 'Tell me a long story');
    await replyHas(page, 'word3');
    await page.reload();
    // The question is kept, unanswered: nothing was asked of the server, and it can be asked again.
    const retry = page.locator('li[data-role="user"] button', { hasText: 'Retry' });
    await retry.waitFor({ timeout: 5_000 });
    expect(await page.locator('li[data-role="assistant"]').count()).toBe(0);
    expect(calls).toEqual([]);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/unanswered-390.png`, fullPage: true });
    // The server went on with the first reply nobody reads any more (RESUME=on); once it is over, Retry is a new call.
    // (While it runs, the proxy would coalesce the identical request onto it.)
    release();
    await fake.calls[0]?.settled;
    expect(fake.calls[0]?.aborted).toBe(false);
    await retry.click();
    await answered(page, 1);
    expect(await replyText(page)).toEqual([demoReply('Tell me a long story')]);
    expect(await page.locator('li[data-role="user"]').count()).toBe(1);
    expect(fake.calls).toHaveLength(2);
    await page.close();
  }, 60_000);
});

describe('the queue in Chromium (UPSTREAM_MAX_CONCURRENT=1)', () => {
  let fake: FakeUpstream;
  beforeAll(async () => {
    fake = await startFakeUpstream({ apiKey: TEST_KEY, tokenDelayMs: 5 });
  });
  afterAll(() => fake?.close());
  let release = () => {};
  afterEach(() => release());

  it('shows the place in line while the request waits, then the reply', async () => {
    const until = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Another caller's reply holds the only slot until the test lets it go.
    fake.script({
      kind: 'pause',
      afterTokens: 2,
      until,
      text: 'a held reply that goes on until the test lets it go',
    });
    const page = await openChat({
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: fake.url,
      CHAT_MODEL: 'demo',
      UPSTREAM_MAX_CONCURRENT: '1',
      QUEUE_MAX_WAIT_MS: '20000',
      START_DEADLINE_MS: '25000',
    });
    const holder = fetch(new URL('/api/chat', page.url()), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hold the slot' }] }),
    });
    await eventually(() => fake.calls.length === 1, 10_000);
    await send(page, 'Wait for me');
    const pending = page.locator('li.pending');
    await page.waitForFunction(
      () => document.querySelector('li.pending')?.textContent?.startsWith("You're 1st in line"),
      undefined,
      { timeout: 10_000, polling: 20 },
    );
    expect(await pending.textContent()).toMatch(/^You're 1st in line…( \(about \d+ s\))?$/);
    expect(fake.calls).toHaveLength(1); // it waits: nothing reached the upstream
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.screenshot({ path: `${SCREENSHOTS}/queued-1200.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${SCREENSHOTS}/queued-390.png`, fullPage: true });
    release();
    await (await holder).text();
    await answered(page, 1);
    expect(await page.locator('li[data-role="assistant"] .text').allTextContents()).toEqual([
      demoReply('Wait for me'),
    ]);
    expect(await page.locator('li.pending').count()).toBe(0);
    await page.close();
  }, 60_000);
});
