import type { UIMessage, UIMessageChunk } from 'ai';
import { countTokens } from 'gpt-tokenizer';
import { afterAll, describe, expect, it } from 'vitest';
import { createProxy } from '../lib/create-proxy';
import { estimateTokens } from '../lib/history/token-estimate';
import { PER_MESSAGE, PER_REPLY } from '../lib/limits/token-bound';
import type { ChatMetadata } from '../lib/types';
import { nodePlatform } from '../server/node-platform';
import { buildHandler, chatRequest, eventually, startHarness, TEST_IP, testConfig } from './support/harness';
import { HELD_OUT_SAMPLES, TOKEN_SAMPLES } from './support/token-samples';
import { chatLikeUseChat, userMessage } from './support/ui';

const CAPS = { MAX_MESSAGES: '6', MAX_MESSAGE_CHARS: '200', MAX_TOTAL_CHARS: '400' };
const h = await startHarness(CAPS);
/** The same caps, but a conversation over them is a 400, as before trimming existed. */
const refusing = buildHandler(
  testConfig({ OPENAI_BASE_URL: h.fake.url, ...CAPS, HISTORY_OVERFLOW: 'refuse' }),
  {
    logs: h.logs,
  },
);
/** Loose character caps and a tight token cap: only tokens decide. */
const tokenCapped = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, MAX_INPUT_TOKENS: '200' }), {
  logs: h.logs,
});

type Message = UIMessage<ChatMetadata>;
type Part = Message['parts'][number];

const SYSTEM = { role: 'system', content: 'You are a test assistant.' };
const user = (text: string, id: string): Message => userMessage(text, id);
const assistant = (id: string, ...parts: Part[]): Message => ({ id, role: 'assistant', parts });
const text = (value: string): Part => ({ type: 'text', text: value });
/** A part this proxy has never heard of, as a newer useChat might send it. */
const unknownPart = (type: string) => ({ type, payload: { anything: true } }) as unknown as Part;

/** `turns` earlier question-and-answer pairs, then the question being asked. */
function conversation(turns: number, say: (n: number, who: 'q' | 'a') => string): Message[] {
  const messages: Message[] = [];
  for (let n = 1; n <= turns; n++) {
    messages.push(user(say(n, 'q'), `q${n}`), assistant(`a${n}`, text(say(n, 'a'))));
  }
  messages.push(user(say(turns + 1, 'q'), `q${turns + 1}`));
  return messages;
}

const sentMessages = (call = 0) => h.fake.calls[call]?.body.messages;
const lastLog = async () => {
  await eventually(() => h.logs.length > 0);
  return h.logs.at(-1);
};
const uiBody = (messages: unknown[]) => ({ id: 'chat-1', messages, trigger: 'submit-message' });

interface ErrorBody {
  error: { message: string; code: string; param?: string };
}

async function expect400(res: Response, param: string, message: RegExp): Promise<void> {
  expect(res.status).toBe(400);
  const { error } = (await res.json()) as ErrorBody;
  expect(error.code).toBe('invalid_request');
  expect(error.param).toBe(param);
  expect(error.message).toMatch(message);
  expect(h.fake.calls).toHaveLength(0);
}

describe('any part in history', () => {
  it('drops every UI-only part type before the upstream call: it sees only the text', async () => {
    const result = await chatLikeUseChat(h.handler, [
      user('What is the weather in Turin?', 'q1'),
      assistant(
        'a1',
        { type: 'step-start' },
        { type: 'reasoning', text: 'The user wants the weather.' },
        text('Sunny, 24 °C.'),
        { type: 'source-url', sourceId: 's1', url: 'https://weather.example/turin', title: 'Turin weather' },
        { type: 'source-document', sourceId: 's2', mediaType: 'application/pdf', title: 'Forecast' },
        { type: 'data-forecast', data: { days: [24, 26] } },
      ),
      user('And tomorrow?', 'q2'),
    ]);
    expect(result.errors).toEqual([]);
    expect(sentMessages()).toEqual([
      SYSTEM,
      { role: 'user', content: 'What is the weather in Turin?' },
      { role: 'assistant', content: 'Sunny, 24 °C.' },
      { role: 'user', content: 'And tomorrow?' },
    ]);
    // Expected parts are not counted: only what the proxy could not use.
    expect((await lastLog())?.dropped_parts).toBeUndefined();
  });

  it('does not send a reasoning part from an earlier assistant turn upstream', async () => {
    await chatLikeUseChat(h.handler, [
      user('Is 91 prime?', 'q1'),
      assistant('a1', { type: 'reasoning', text: 'SECRET-CHAIN: 91 = 7 × 13' }, text('No: 7 × 13.')),
      user('And 97?', 'q2'),
    ]);
    expect(JSON.stringify(h.fake.calls[0]?.body)).not.toContain('SECRET-CHAIN');
    expect(sentMessages()?.[2]).toEqual({ role: 'assistant', content: 'No: 7 × 13.' });
  });

  it('drops an unknown part type, and counts it in the log', async () => {
    const result = await chatLikeUseChat(h.handler, [
      user('Hi', 'q1'),
      assistant('a1', text('Hello!'), unknownPart('hologram')),
      user('Again', 'q2'),
    ]);
    expect(result.errors).toEqual([]);
    expect(sentMessages()).toEqual([
      SYSTEM,
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Again' },
    ]);
    expect(await lastLog()).toMatchObject({ status: 200, outcome: 'complete', dropped_parts: 1 });
  });

  it('drops tool parts, and an assistant turn that was only a tool call', async () => {
    const tool = {
      type: 'tool-getWeather',
      toolCallId: 'call-1',
      state: 'output-available',
      input: { city: 'Turin' },
      output: { celsius: 24 },
    } as Part;
    const dynamic = {
      type: 'dynamic-tool',
      toolName: 'lookup',
      toolCallId: 'call-2',
      state: 'input-available',
      input: {},
    } as Part;
    await chatLikeUseChat(h.handler, [
      user('Weather?', 'q1'),
      assistant('a1', { type: 'step-start' }, tool),
      user('Still there?', 'q2'),
      assistant('a2', text('Checking.'), dynamic, { type: 'step-start' }, text('It is sunny.')),
      user('Thanks', 'q3'),
    ]);
    expect(sentMessages()).toEqual([
      SYSTEM,
      { role: 'user', content: 'Weather?' },
      { role: 'user', content: 'Still there?' },
      { role: 'assistant', content: 'Checking.\n\nIt is sunny.' },
      { role: 'user', content: 'Thanks' },
    ]);
    expect((await lastLog())?.dropped_parts).toBe(2);
  });

  it('drops a file part in older history, so one attachment cannot break every later turn', async () => {
    const file = { type: 'file', url: 'data:text/plain,hi', mediaType: 'text/plain' } as const;
    await chatLikeUseChat(h.handler, [
      { id: 'q1', role: 'user', parts: [text('Read this'), file] },
      assistant('a1', text('I cannot read files yet.')),
      user('OK, just chat then', 'q2'),
    ]);
    expect(sentMessages()?.[1]).toEqual({ role: 'user', content: 'Read this' });
    expect((await lastLog())?.dropped_parts).toBe(1);
  });

  it('refuses a file type not in ATTACHMENT_TYPES in the message being answered with a 400 naming it', async () => {
    const res = await h.handler(
      chatRequest(
        uiBody([
          { id: 'q1', role: 'user', parts: [{ type: 'text', text: 'Hi' }] },
          { id: 'a1', role: 'assistant', parts: [{ type: 'text', text: 'Hello' }] },
          {
            id: 'q2',
            role: 'user',
            parts: [
              { type: 'text', text: 'What is in it?' },
              { type: 'file', url: 'data:,x', mediaType: 'text/plain' },
            ],
          },
        ]),
      ),
    );
    await expect400(
      res,
      'messages[2].parts[1].mediaType',
      /"text\/plain" is not accepted here \(allowed: image\/png/,
    );
  });

  it('refuses a last user message left without text, naming it', async () => {
    const res = await h.handler(
      chatRequest(
        uiBody([
          { id: 'q1', role: 'user', parts: [{ type: 'text', text: 'Hi' }] },
          { id: 'q2', role: 'user', parts: [{ type: 'data-mood', data: 'happy' }, { type: 'step-start' }] },
        ]),
      ),
    );
    await expect400(res, 'messages[1].parts', /at least one text part that is not empty/);
  });

  it('still refuses a part that is not an object with a string type', async () => {
    const res = await h.handler(chatRequest(uiBody([{ id: 'q1', role: 'user', parts: [{ type: 7 }] }])));
    await expect400(res, 'messages[0].parts[0].type', /must be a string/);
  });
});

describe('long conversations', () => {
  const short = (n: number, who: 'q' | 'a') => `${who}${n}`;

  it('trims the oldest whole turns past MAX_MESSAGES, keeps the system prompt and the last question, and says so', async () => {
    // 5 earlier turns and the question: 11 messages, 6 allowed. Whole turns go: 3 turns (6 messages) stay out.
    const result = await chatLikeUseChat(h.handler, conversation(5, short));
    expect(result.errors).toEqual([]);
    expect(sentMessages()).toEqual([
      SYSTEM,
      { role: 'user', content: 'q4' },
      { role: 'assistant', content: 'a4' },
      { role: 'user', content: 'q5' },
      { role: 'assistant', content: 'a5' },
      { role: 'user', content: 'q6' },
    ]);
    expect(result.headers?.get('x-chat-trimmed')).toBe('6');
    // Right after `start`, accepted by the SDK's own stream parser, and transient: not part of the message.
    expect(result.chunks[0]?.type).toBe('start');
    expect(result.chunks[1]).toEqual({ type: 'data-trimmed', data: { messages: 6 }, transient: true });
    expect(result.message?.parts.map((p) => p.type)).not.toContain('data-trimmed');
    expect(result.text.length).toBeGreaterThan(0);
    expect(await lastLog()).toMatchObject({ status: 200, outcome: 'complete', trimmed: 6 });
  });

  it('trims past MAX_TOTAL_CHARS', async () => {
    // 100 characters a message, 400 in all: the question and one earlier turn fit.
    const long = (n: number, who: 'q' | 'a') => `${who}${n} `.padEnd(100, '.');
    const result = await chatLikeUseChat(h.handler, conversation(3, long));
    expect(sentMessages()?.map((m) => String(m.content).slice(0, 3).trim())).toEqual([
      'You',
      'q3',
      'a3',
      'q4',
    ]);
    expect(result.headers?.get('x-chat-trimmed')).toBe('4');
  });

  it('trims past MAX_INPUT_TOKENS, counting the system prompt', async () => {
    // 50 tokens of text a message (+4 for its frame): the question and one earlier turn fit in 200 with the prompt.
    const words = (n: number) => `${'word '.repeat(49)}${['one', 'two', 'three', 'four'][n - 1]}`;
    const messages = conversation(3, (n) => words(n));
    expect(estimateTokens(words(1))).toBe(50);
    const result = await chatLikeUseChat(tokenCapped, messages);
    const sent = sentMessages() ?? [];
    expect(sent).toHaveLength(4);
    expect(sent[0]).toEqual(SYSTEM);
    expect(sent.at(-1)).toEqual({ role: 'user', content: words(4) });
    expect(result.headers?.get('x-chat-trimmed')).toBe('4');
    const prompt = sent.reduce((n, m) => n + estimateTokens(String(m.content)) + PER_MESSAGE, PER_REPLY);
    expect(prompt).toBeLessThanOrEqual(200);
    expect(prompt + 2 * (50 + PER_MESSAGE)).toBeGreaterThan(200);
  });

  it('trims past MAX_INPUT_TOKENS, counting the declared TOOLS too', async () => {
    // The same conversation as above: with tools worth about 60 tokens, the earlier turn no longer fits.
    const tool = {
      name: 'lookup',
      description: 'Looks a word up. '.repeat(12),
      parameters: { type: 'object' },
    };
    const tools = JSON.stringify([tool]);
    expect(estimateTokens(tools)).toBeGreaterThan(50);
    const config = testConfig({ OPENAI_BASE_URL: h.fake.url, MAX_INPUT_TOKENS: '200', TOOLS: tools });
    const words = (n: number) => `${'word '.repeat(49)}${['one', 'two', 'three', 'four'][n - 1]}`;
    const result = await chatLikeUseChat(
      buildHandler(config, { logs: h.logs }),
      conversation(3, (n) => words(n)),
    );
    const sent = sentMessages() ?? [];
    expect(sent).toHaveLength(2); // the system prompt and the question
    expect(sent.at(-1)).toEqual({ role: 'user', content: words(4) });
    expect(result.headers?.get('x-chat-trimmed')).toBe('6');
    const prompt = sent.reduce((n, m) => n + estimateTokens(String(m.content)) + PER_MESSAGE, PER_REPLY);
    expect(prompt + estimateTokens(tools) + PER_MESSAGE).toBeLessThanOrEqual(200);
  });

  it('trims a curl-shaped conversation too, and tells a plain-text client in the header only', async () => {
    const handler = buildHandler(
      testConfig({ OPENAI_BASE_URL: h.fake.url, ...CAPS, ALLOWED_ORIGINS: 'https://app.example.com' }),
    );
    const messages = conversation(4, short).map((m) => ({
      role: m.role,
      content: m.parts.map((p) => (p.type === 'text' ? p.text : '')).join(''),
    }));
    h.fake.script({ kind: 'reply', text: 'Plain reply.' });
    const res = await handler(
      chatRequest({ messages }, { headers: { accept: 'text/plain', origin: 'https://app.example.com' } }),
    );
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Plain reply.');
    expect(res.headers.get('x-chat-trimmed')).toBe('4');
    expect(res.headers.get('access-control-expose-headers')).toContain('x-chat-trimmed');
    expect(sentMessages()?.at(-1)).toEqual({ role: 'user', content: 'q5' });
  });

  it('leaves a conversation that fits alone: no header, no data part, nothing in the log', async () => {
    const result = await chatLikeUseChat(h.handler, conversation(2, short));
    expect(sentMessages()).toHaveLength(6);
    expect(result.headers?.has('x-chat-trimmed')).toBe(false);
    expect(result.chunks.map((c: UIMessageChunk) => c.type)).not.toContain('data-trimmed');
    expect((await lastLog())?.trimmed).toBeUndefined();
  });

  it('keeps the 400 with HISTORY_OVERFLOW=refuse', async () => {
    const messages = conversation(5, short);
    await expect400(
      await refusing(chatRequest(uiBody(messages))),
      'messages',
      /too many messages \(at most 6\)/,
    );
    const long = (n: number, who: 'q' | 'a') => `${who}${n} `.padEnd(100, '.');
    await expect400(
      await refusing(chatRequest(uiBody(conversation(2, long)))),
      'messages',
      /at most 400 characters across the conversation/,
    );
  });

  it('still refuses a single message over MAX_MESSAGE_CHARS, naming the limit, old or new', async () => {
    const tooLong = 'x'.repeat(201);
    await expect400(
      await h.handler(chatRequest({ messages: [{ role: 'user', content: tooLong }] })),
      'messages[0].content',
      /at most 200 characters/,
    );
    const old = conversation(1, short);
    old[1] = assistant('a1', text(tooLong));
    await expect400(await h.handler(chatRequest(uiBody(old))), 'messages[1].parts', /at most 200 characters/);
  });

  it('refuses a last message that cannot fit even alone', async () => {
    const res = await tokenCapped(
      chatRequest({ messages: [{ role: 'user', content: 'word '.repeat(199) }] }),
    );
    await expect400(
      res,
      'messages',
      /does not fit, even with every earlier one left out \(at most 200 tokens/,
    );
  });
});

describe('the token count', () => {
  const ratio = (text: string) => estimateTokens(text) / countTokens(text);

  // The README states these bounds; the samples are in tests/support/token-samples.ts.
  it.each(Object.entries(TOKEN_SAMPLES))('estimates %s within -5% / +10% of o200k_base', (_name, sample) => {
    expect(ratio(sample)).toBeGreaterThanOrEqual(0.95);
    expect(ratio(sample)).toBeLessThanOrEqual(1.1);
  });

  const ADVERSARIAL = ['base64 blob'];
  it.each(Object.entries(HELD_OUT_SAMPLES))('estimates held-out %s within its bound', (name, sample) => {
    expect(ratio(sample)).toBeGreaterThanOrEqual(ADVERSARIAL.includes(name) ? 0.6 : 0.85);
    expect(ratio(sample)).toBeLessThanOrEqual(1.15);
  });

  describe('on the Node server, with gpt-tokenizer', () => {
    // Base64 is where the estimate is furthest below the real count: a cap between the two tells them apart.
    const blob = HELD_OUT_SAMPLES['base64 blob'] ?? '';
    const prompt = (count: (text: string) => number) =>
      PER_REPLY + count(SYSTEM.content) + PER_MESSAGE + count(blob) + PER_MESSAGE;
    const estimated = prompt(estimateTokens);
    const counted = prompt((t) => countTokens(t));
    const cap = Math.floor((estimated + counted) / 2);
    const env = { OPENAI_BASE_URL: h.fake.url, MAX_INPUT_TOKENS: String(cap) };
    const proxy = createProxy(testConfig(env), {
      clientIp: () => TEST_IP,
      tokenCounter: nodePlatform.tokenCounter,
      log: () => {},
    });
    afterAll(() => proxy.close());

    it('counts with the real tokenizer where the edge estimates', async () => {
      expect(estimated).toBeLessThan(cap);
      expect(counted).toBeGreaterThan(cap);
      const body = { messages: [{ role: 'user', content: blob }] };
      const edge = await buildHandler(testConfig(env))(chatRequest(body));
      expect(edge.status).toBe(200);
      await edge.text();
      h.fake.reset();
      await expect400(
        await proxy.handler(chatRequest(body)),
        'messages',
        new RegExp(`about ${counted} here`),
      );
    });

    it('counts special-token text as plain text instead of throwing', async () => {
      const res = await proxy.handler(
        chatRequest({ messages: [{ role: 'user', content: 'Hi <|endoftext|>' }] }),
      );
      expect(res.status).toBe(200);
      await res.text();
    });
  });
});
