import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Behaviour, type FakeUpstream, faults, startFakeUpstream } from '../fake-upstream';
import type { ChatHandler } from '../lib/chat-handler';
import type { Config } from '../lib/config';
import { worstCaseTokens } from '../lib/limits/token-bound';
import type { RequestLog } from '../lib/log';
import type { ChatRequest } from '../lib/types';
import { endsWhole, postChatStream, type Transport } from '../lib/upstream/openai-http';
import { createUpstreamTarget } from '../lib/upstream/target';
import {
  buildHandler,
  chatRequest,
  eventually,
  startHarness,
  TEST_KEY,
  testConfig,
  userSays,
} from './support/harness';
import { SECRETS } from './support/secret-scan';
import { chatLikeUseChat, userMessage } from './support/ui';

/** Tiny timeouts and delays, so every row runs in milliseconds (no real multi-second sleeps). */
const FAST = {
  UPSTREAM_MAX_ATTEMPTS: '3',
  RETRY_BASE_DELAY_MS: '5',
  RETRY_MAX_DELAY_MS: '20',
  RETRY_AFTER_MAX_MS: '500',
  // Timeouts short enough to keep the file fast, long enough that a loaded machine never trips them by accident
  // (at 150 ms a slow first byte on a busy CI box was aborted and retried, and the retry got another reply).
  FIRST_TOKEN_TIMEOUT_MS: '1000',
  START_DEADLINE_MS: '4000',
  IDLE_TIMEOUT_MS: '1000',
};
const SPARE_KEY = SECRETS.spareKey;

const h = await startHarness(FAST);
let spare: FakeUpstream;
let withFallbacks: ChatHandler;
let fallbacksConfig: Config;
const logs: RequestLog[] = [];

beforeAll(async () => {
  spare = await startFakeUpstream({ apiKey: SPARE_KEY });
  // Fallbacks: first another model on the same upstream (same key), then a model on another provider.
  const config = testConfig({
    ...FAST,
    OPENAI_BASE_URL: h.fake.url,
    FALLBACK_MODELS: 'backup-model, spare-model@spare',
    UPSTREAM_SPARE_BASE_URL: spare.url,
    UPSTREAM_SPARE_API_KEY: SPARE_KEY,
  });
  withFallbacks = buildHandler(config, { logs });
  fallbacksConfig = config;
});
afterAll(() => spare.close());
beforeEach(() => {
  spare.reset();
  logs.length = 0;
});

interface ErrorBody {
  error: { message: string; type: string; code: string; request_id: string };
}

/** Every byte a client could see: the headers and the body. */
async function visible(res: Response): Promise<string> {
  return `${JSON.stringify([...res.headers])}\n${await res.clone().text()}`;
}

function expectNoLeak(...outputs: string[]): void {
  for (const output of outputs) {
    expect(output).not.toContain(TEST_KEY);
    expect(output).not.toContain(SPARE_KEY);
    expect(output).not.toContain('SECRET');
    expect(output).not.toMatch(/sk-[A-Za-z0-9*]{4,}/);
    // Upstream internals (its wording, org ids, hostnames) stay in the log.
    expect(output).not.toMatch(
      /org-internal|gpu-17|maximum context length|exceeded your current quota|Incorrect API key|does not exist/,
    );
  }
}

async function expectError(res: Response, status: number, code: string, message: RegExp): Promise<void> {
  expect(res.status).toBe(status);
  expectNoLeak(await visible(res));
  const body = (await res.json()) as ErrorBody;
  expect(body.error).toMatchObject({
    code,
    type: 'upstream_error',
    request_id: res.headers.get('x-request-id'),
  });
  expect(body.error.message).toMatch(message);
}

const ask = (handler: ChatHandler = h.handler) =>
  handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
const UNAVAILABLE = /^The assistant is unavailable right now\. Please try again in a moment\.$/;
const models = (fake: FakeUpstream) => fake.calls.map((c) => c.body.model);

describe('401 invalid key', () => {
  it('answers 502 upstream_auth blaming the setup, never retries, logs loudly', async () => {
    h.fake.script(faults.unauthorized());
    await expectError(await ask(), 502, 'upstream_auth', /not set up correctly.*let the site owner know/);
    expect(h.fake.calls).toHaveLength(1);
    expect(h.logs[0]).toMatchObject({ level: 'error', error_code: 'upstream_auth' });
    expect(h.logs[0]?.error_detail).toContain('Incorrect API key provided');
    expectNoLeak(JSON.stringify(h.logs).replace('Incorrect API key', ''));
  });

  it('skips fallbacks that share the failing key and uses one with its own', async () => {
    h.fake.script(faults.unauthorized());
    const res = await ask(withFallbacks);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-chat-model')).toBe('spare-model');
    expect(res.headers.get('x-chat-fallback')).toBe('model');
    await res.text();
    expect(models(h.fake)).toEqual(['test-model']);
    expect(models(spare)).toEqual(['spare-model']);
  });

  it('never leaks the key when the upstream echoes it back', async () => {
    const logs: RequestLog[] = [];
    const misconfigured = testConfig({
      ...FAST,
      OPENAI_BASE_URL: h.fake.url,
      OPENAI_API_KEY: `${TEST_KEY}-wrong`,
    });
    const wrongKey = buildHandler(misconfigured, { logs });
    const res = await ask(wrongKey);
    expect(res.status).toBe(502);
    expect(logs[0]?.error_detail).toContain('Incorrect API key provided: [redacted]');
    expectNoLeak(await visible(res), JSON.stringify(logs).replace('Incorrect API key', ''));
  });
});

describe('429 insufficient_quota', () => {
  it('answers 503 upstream_quota with a friendly message and no retry', async () => {
    h.fake.script(faults.insufficientQuota());
    await expectError(await ask(), 503, 'upstream_quota', UNAVAILABLE);
    expect(h.fake.calls).toHaveLength(1);
  });
});

describe('429 rate limited', () => {
  it('retries after the upstream’s retry-after and succeeds', async () => {
    h.fake.script(faults.rateLimited({ ms: 60 }), { kind: 'reply', text: 'Second time lucky.' });
    const res = await ask();
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Second time lucky.');
    const [first, second] = h.fake.calls;
    expect(h.fake.calls).toHaveLength(2);
    expect((second?.startedAt ?? 0) - (first?.startedAt ?? 0)).toBeGreaterThanOrEqual(55);
  });

  it('after every attempt, answers 503 with Retry-After', async () => {
    h.fake.script(
      faults.rateLimited({ ms: 10, seconds: 3 }),
      faults.rateLimited({ ms: 10, seconds: 3 }),
      faults.rateLimited({ ms: 10, seconds: 3 }),
    );
    const res = await ask();
    expect(res.headers.get('retry-after')).toBe('1');
    await expectError(res, 503, 'upstream_rate_limited', /busy right now\. Please try again shortly\./);
    expect(h.fake.calls).toHaveLength(3);
  });

  it('does not wait for a retry-after beyond the cap: falls back at once, else 503 with that Retry-After', async () => {
    // Handlers of their own: a 30 s retry-after pauses the model on the handler that heard it (tests/queue.test.ts).
    const alone = buildHandler(h.config);
    const fallbacks = buildHandler(fallbacksConfig);
    h.fake.script(faults.rateLimited({ seconds: 30 }));
    const res = await ask(alone);
    expect(res.headers.get('retry-after')).toBe('30');
    await expectError(res, 503, 'upstream_rate_limited', /busy/);
    expect(h.fake.calls).toHaveLength(1);

    h.fake.reset();
    h.fake.script(faults.rateLimited({ seconds: 30 }));
    const saved = await ask(fallbacks);
    expect(saved.status).toBe(200);
    expect(saved.headers.get('x-chat-model')).toBe('backup-model');
    await saved.text();
    expect(models(h.fake)).toEqual(['test-model', 'backup-model']);
  });
});

describe('404 model_not_found', () => {
  it('answers 502 upstream_model without a fallback', async () => {
    h.fake.script(faults.modelNotFound('test-model'));
    await expectError(await ask(), 502, 'upstream_model', UNAVAILABLE);
    expect(h.fake.calls).toHaveLength(1);
  });

  it('falls back to the next model, and says which one served', async () => {
    h.fake.script(faults.modelNotFound('test-model'));
    const res = await ask(withFallbacks);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-chat-model')).toBe('backup-model');
    expect(res.headers.get('x-chat-fallback')).toBe('model');
    await res.text();
    expect(models(h.fake)).toEqual(['test-model', 'backup-model']);
    await eventually(() => logs.length === 1);
    expect(logs[0]).toMatchObject({ model: 'backup-model', fallback: 'model', attempts: 2 });
  });
});

describe('400 context_length_exceeded', () => {
  it('answers 400 context_too_long, telling the user what to do, with no retry or fallback', async () => {
    h.fake.script(faults.contextLength());
    const res = await ask(withFallbacks);
    await expectError(
      res,
      400,
      'context_too_long',
      /too long for the assistant\. Start a new chat or shorten your message\./,
    );
    expect(h.fake.calls).toHaveLength(1);
    expect(spare.calls).toHaveLength(0);
  });
});

describe('500 / 502 / 503 / network errors', () => {
  it('retries with backoff and succeeds', async () => {
    h.fake.script(faults.serverError(500), faults.serverError(502), { kind: 'reply', text: 'Recovered.' });
    const res = await ask();
    expect(await res.text()).toBe('Recovered.');
    expect(h.fake.calls).toHaveLength(3);
  });

  it('draws each backoff with full jitter: a wait past the start deadline means giving up instead', async () => {
    const slowBackoff = { RETRY_BASE_DELAY_MS: '5000', RETRY_MAX_DELAY_MS: '5000' };
    const config = testConfig({ ...FAST, ...slowBackoff, OPENAI_BASE_URL: h.fake.url });
    const patient = buildHandler(config, { _internal: { random: () => 0 } });
    const unlucky = buildHandler(config, { _internal: { random: () => 1 } });
    h.fake.script(faults.serverError(500), { kind: 'reply', text: 'Recovered.' });
    expect(await (await ask(patient)).text()).toBe('Recovered.'); // jitter 0: retried at once
    expect(h.fake.calls).toHaveLength(2);
    h.fake.script(faults.serverError(500), { kind: 'reply', text: 'Never asked.' });
    expect((await ask(unlucky)).status).toBe(502); // jitter 1: a 5 s wait does not fit the 4 s deadline
    expect(h.fake.calls).toHaveLength(3);
  });

  it('answers 502 after the last attempt', async () => {
    h.fake.script(faults.serverError(500), faults.serverError(500), faults.serverError(500));
    await expectError(await ask(), 502, 'upstream_unavailable', UNAVAILABLE);
    expect(h.fake.calls).toHaveLength(3);
    expect(h.logs[0]).toMatchObject({ level: 'error' });
    expect(h.logs[0]?.error_detail).toMatch(/gpu-17\.internal.*\(after 3 attempts\)/);
  });

  it('answers 503 when the upstream was overloaded', async () => {
    h.fake.script(faults.serverError(503), faults.serverError(503), faults.serverError(503));
    await expectError(await ask(), 503, 'upstream_unavailable', UNAVAILABLE);
  });

  it('falls back after the retries', async () => {
    h.fake.script(...Array.from({ length: 6 }, () => faults.serverError(500)));
    const res = await ask(withFallbacks);
    expect(res.headers.get('x-chat-model')).toBe('spare-model');
    await res.text();
    expect(h.fake.calls).toHaveLength(6); // 3 × test-model, 3 × backup-model
    expect(spare.calls).toHaveLength(1);
  });

  it('answers 502 upstream_unreachable when nothing listens, after retrying', async () => {
    const logs: RequestLog[] = [];
    const handler = buildHandler(testConfig({ ...FAST, OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' }), { logs });
    await expectError(await ask(handler), 502, 'upstream_unreachable', UNAVAILABLE);
    expect(logs[0]?.error_detail).toMatch(/Connection error|ECONNREFUSED/);
  });
});

describe('no first token within the first-token timeout', () => {
  it('aborts the slow attempt and retries', async () => {
    h.fake.script({ kind: 'slow-first-token', delayMs: 5_000 }, { kind: 'reply', text: 'Faster now.' });
    const res = await ask();
    expect(await res.text()).toBe('Faster now.');
    expect(h.fake.calls).toHaveLength(2);
    await eventually(() => h.fake.calls[0]?.aborted === true);
  });

  it('answers 504 when every attempt is too slow, having aborted each one', async () => {
    h.fake.script(
      ...Array.from({ length: 3 }, () => ({ kind: 'slow-first-token', delayMs: 5_000 }) as const),
    );
    await expectError(await ask(), 504, 'upstream_timeout', /took too long to answer\. Please try again\./);
    // Three calls within the 4 s start deadline: each attempt was cut by its own 1 s first-token timeout.
    expect(h.fake.calls).toHaveLength(3);
    await eventually(() => h.fake.calls.every((c) => c.aborted));
  });

  it('stops at the overall deadline, whatever attempts are left', async () => {
    const handler = buildHandler(
      testConfig({ ...FAST, OPENAI_BASE_URL: h.fake.url, START_DEADLINE_MS: '1500' }),
    );
    h.fake.script(
      ...Array.from({ length: 3 }, () => ({ kind: 'slow-first-token', delayMs: 5_000 }) as const),
    );
    const res = await ask(handler);
    expect(res.status).toBe(504);
    // 1 s per attempt against a 1.5 s deadline: the second attempt is cut by the deadline, the third never runs.
    expect(h.fake.calls).toHaveLength(2);
    await eventually(() => h.fake.calls.every((c) => c.aborted));
  });

  it('tries no fallback model once the deadline has cut an attempt', async () => {
    const handler = buildHandler({
      ...fallbacksConfig,
      failover: {
        ...fallbacksConfig.failover,
        policy: { ...fallbacksConfig.failover.policy, startDeadlineMs: 1500, maxAttempts: 2 },
      },
    });
    h.fake.script(
      ...Array.from({ length: 4 }, () => ({ kind: 'slow-first-token', delayMs: 5_000 }) as const),
    );
    await expectError(await ask(handler), 504, 'upstream_timeout', /took too long to answer/);
    // test-model: cut at 1 s (first token), then at 1.5 s (the deadline); backup-model and the spare never asked.
    expect(models(h.fake)).toEqual(['test-model', 'test-model']);
    expect(spare.calls).toHaveLength(0);
  });
});

describe('after the first token: errors go inside the stream, which ends cleanly', () => {
  const midStream: [name: string, behaviour: Behaviour, message: string][] = [
    [
      'a stall (idle timeout)',
      { kind: 'stall', afterTokens: 2, text: 'Partial answer that never ends' },
      'The assistant stopped responding. Please try again.',
    ],
    [
      'a cut connection',
      { kind: 'cut', afterTokens: 2, text: 'Partial answer that never ends' },
      'The reply was interrupted. Please try again.',
    ],
    [
      'malformed SSE',
      { kind: 'malformed', afterTokens: 2, text: 'Partial answer that never ends' },
      'The reply was interrupted. Please try again.',
    ],
  ];

  it.each(midStream)(
    '%s: useChat keeps the partial text and gets an error',
    async (_name, behaviour, message) => {
      h.fake.script(behaviour);
      const result = await chatLikeUseChat(h.handler, [userMessage('Hi')]);
      expect(result.text).toBe('Partial answer ');
      expect(result.errors).toEqual([message]);
      expect(h.fake.calls).toHaveLength(1); // no retry once a token was sent
      await eventually(() => h.logs.length === 1);
      expect(h.logs[0]).toMatchObject({ status: 200, outcome: 'error' });
    },
  );

  it.each(midStream)(
    '%s: curl sees the partial text and a clear last line',
    async (_name, behaviour, message) => {
      h.fake.script(behaviour);
      const res = await ask();
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(`Partial answer \n\n[error] ${message}\n`);
    },
  );

  it('aborts a stalled upstream at the idle timeout', async () => {
    h.fake.script({ kind: 'stall', afterTokens: 1 });
    const res = await ask();
    await res.text();
    await eventually(() => h.fake.calls[0]?.aborted === true);
    expect(h.logs[0]?.error_code).toBe('upstream_stalled');
  });

  it('stops a reply at the total timeout, aborting the upstream', async () => {
    const slow = await startFakeUpstream({ apiKey: TEST_KEY, tokenDelayMs: 30 });
    const handler = buildHandler(testConfig({ ...FAST, OPENAI_BASE_URL: slow.url, TOTAL_TIMEOUT_MS: '250' }));
    slow.script({ kind: 'long', tokens: 1_000 });
    const text = await (await ask(handler)).text();
    expect(text).toMatch(/^word0 word1 .*\n\n\[error\] The reply took too long and was stopped\.\n$/s);
    await eventually(() => slow.calls[0]?.aborted === true);
    await slow.close();
  });

  it('streams a very long answer completely', async () => {
    h.fake.script({ kind: 'long', tokens: 5_000 });
    const text = await (await ask()).text();
    expect(text.split(' ').filter(Boolean)).toHaveLength(5_000);
  });
});

describe('FALLBACK_MESSAGE', () => {
  it('streams the operator’s message as a normal reply when every upstream failed, flagged, and charges nothing', async () => {
    const logs: RequestLog[] = [];
    const charged: Promise<unknown>[] = [];
    const config = testConfig({
      ...FAST,
      OPENAI_BASE_URL: h.fake.url,
      FALLBACK_MESSAGE: 'Our assistant is taking a break. Please email help@example.com.',
      TOKEN_BUDGET: '2000',
      MAX_OUTPUT_TOKENS: '100',
    });
    const handler = buildHandler(config, { logs, waitUntil: (p) => void charged.push(p) });
    h.fake.script(faults.serverError(503), faults.serverError(503), faults.serverError(503));
    const ui = await chatLikeUseChat(handler, [userMessage('Hi')]);
    expect(ui.text).toBe('Our assistant is taking a break. Please email help@example.com.');
    expect(ui.errors).toEqual([]);
    expect(h.fake.calls).toHaveLength(3);
    await Promise.all(charged);
    expect(logs[0]).toMatchObject({ fallback: 'message', status: 200 });

    h.fake.script(faults.serverError(500), faults.serverError(500), faults.serverError(500));
    const res = await handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    expect(res.headers.get('x-chat-fallback')).toBe('message');
    expect(res.headers.get('x-chat-model')).toBeNull();
    // Nothing was charged: the whole budget is still there, less this request's own reservation.
    const request = {
      messages: userSays('Hi').messages,
      model: 'test-model',
      maxTokens: 100,
      temperature: undefined,
    };
    const reserved = worstCaseTokens(request, config.operatorTokens);
    expect(res.headers.get('ratelimit')).toContain(`"tokens";r=${2000 - reserved};`);
    await res.text();
  });

  it('is not used for a client error such as a too-long conversation', async () => {
    const handler = buildHandler(
      testConfig({ ...FAST, OPENAI_BASE_URL: h.fake.url, FALLBACK_MESSAGE: 'Taking a break.' }),
    );
    h.fake.script(faults.contextLength());
    expect((await ask(handler)).status).toBe(400);
  });
});

/**
 * The parser's batches for an upstream whose body is `body` (its reads, as bytes); `onCancel` hears the parser cancel
 * it.
 */
async function chunksOfBody(body: AsyncIterable<Uint8Array>, onCancel = () => {}) {
  const transport: Transport = async () => ({
    status: 200,
    headers: { get: () => null, all: () => new Headers() },
    body,
    text: async () => '',
    cancel: async () => onCancel(),
  });
  const endpoint = { baseURL: 'http://upstream.test/v1', apiKey: 'key', transport };
  return (await postChatStream(endpoint, {}, new AbortController().signal)).chunks;
}

const bytes = (text: string) => new TextEncoder().encode(text);

describe('the server-sent events parser', () => {
  /** The parser's batches for an upstream whose body arrives in exactly these reads. */
  const chunksOfReads = (reads: readonly string[]) =>
    chunksOfBody(
      (async function* () {
        for (const read of reads) yield bytes(read);
      })(),
    );

  it('reads CR LF events split anywhere between reads, a CR at the end of one and its LF at the start of the next', async () => {
    const event = (text: string) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}`;
    const reads = [`${event('one')}\r`, '\n\r', `\n${event('two')}\r\n\r\n`, 'data: [DONE]\r\n\r\n'];
    const chunks = await chunksOfReads(reads);
    const texts: string[] = [];
    for await (const batch of chunks) texts.push(...batch.map((c) => String(c.choices[0]?.delta.content)));
    expect(texts).toEqual(['one', 'two']);
  });

  it('reads characters split between reads, at every byte of every length, and whole ones again after', async () => {
    const words = ['é', '€', '𝄞', 'naïve ünïcödé', '日本語のテキスト'];
    for (const word of words) {
      const event = bytes(
        `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: word } }] })}\n\n`,
      );
      const after = 'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n';
      for (let cut = 1; cut < event.length; cut++) {
        const reads = [event.subarray(0, cut), event.subarray(cut), bytes(after)];
        const chunks = await chunksOfBody(
          (async function* () {
            yield* reads;
          })(),
        );
        const texts: string[] = [];
        for await (const batch of chunks)
          texts.push(...batch.map((c) => String(c.choices[0]?.delta.content)));
        expect(texts).toEqual([word, 'ok']);
      }
    }
  });

  it('tells a read that ends on a whole character from one that splits one (which needs a decoder of its own)', () => {
    for (const text of ['', 'a', 'é', '€', '𝄞', 'data: naïve €\n\n'])
      expect(endsWhole(bytes(text))).toBe(true);
    for (const char of ['é', '€', '𝄞']) {
      const whole = bytes(`ab${char}`);
      const width = bytes(char).length;
      for (let cut = 1; cut < width; cut++)
        expect(endsWhole(whole.subarray(0, whole.length - cut))).toBe(false);
    }
  });

  it('drops a byte-order mark at the stream’s start only, never a U+FEFF that starts a later read', async () => {
    const event = (text: string) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}\n\n`;
    const first = event('a');
    const split = first.length + 'data: {"choices":[{"index":0,"delta":{"content":"'.length;
    const body = `\uFEFF${first}${event('\uFEFFb')}data: [DONE]\n\n`;
    const at = split + 1; // the second event's content starts with U+FEFF: a read begins right there
    const chunks = await chunksOfReads([body.slice(0, at), body.slice(at)]);
    const texts: string[] = [];
    for await (const batch of chunks) texts.push(...batch.map((c) => String(c.choices[0]?.delta.content)));
    expect(texts).toEqual(['a', '\uFEFFb']);
  });

  it('gives the events of one read as one batch, and a bad event’s error only after the good ones before it', async () => {
    const event = (text: string) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}\n\n`;
    const reads = [
      `${event('a')}${event('b')}${event('c')}`,
      `${event('d')}data: {not json\n\n${event('e')}`,
    ];
    const chunks = await chunksOfReads(reads);
    const batches: string[][] = [];
    const failed = (async () => {
      for await (const batch of chunks) batches.push(batch.map((c) => String(c.choices[0]?.delta.content)));
    })();
    await expect(failed).rejects.toThrow(/malformed server-sent event JSON/);
    expect(batches).toEqual([['a', 'b', 'c'], ['d']]);
  });

  it('reads data on several lines or without its space, skips comments and other fields, and throws an error event', async () => {
    const reads = [
      ': keep-alive\n\n',
      'id: 1\ndata: {"choices":[{"index":0,\ndata: "delta":{"content":"x"}}]}\n\n',
      'data:{"choices":[{"index":0,"delta":{"content":"y"}}]}\n\n',
      'event: error\ndata: {"message":"overloaded"}\n\n', // an error by its name alone, not by an `error` field
    ];
    const chunks = await chunksOfReads(reads);
    const texts: string[] = [];
    const failed = (async () => {
      for await (const batch of chunks) texts.push(...batch.map((c) => String(c.choices[0]?.delta.content)));
    })();
    await expect(failed).rejects.toThrow(/overloaded/);
    expect(texts).toEqual(['x', 'y']);
  });
});

describe('the end of an upstream body after [DONE]', () => {
  const event = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'hi' } }] })}\n\n`;

  it('ends the chunks at [DONE] without waiting for the body to end, and reads the rest so the connection is reused', async () => {
    let release = () => {};
    const rest = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen = { drained: false, cancelled: false };
    const chunks = await chunksOfBody(
      (async function* () {
        yield bytes(`${event}data: [DONE]\n\n`);
        await rest; // the body's end comes later (or, from some servers, only when the connection closes)
        yield bytes(': after the end\n\n');
        seen.drained = true;
      })(),
      () => {
        seen.cancelled = true;
      },
    );
    const batches: number[] = [];
    for await (const batch of chunks) batches.push(batch.length); // returns while `rest` is still pending
    expect(batches).toEqual([1]);
    expect(seen).toEqual({ drained: false, cancelled: false });
    release();
    await eventually(() => seen.drained, 5_000);
    expect(seen.cancelled).toBe(false);
  });

  it('a connection lost after [DONE] does not fail the reply that came whole before it', async () => {
    let cancelled = false;
    const chunks = await chunksOfBody(
      (async function* () {
        yield bytes(`${event}data: [DONE]\n\n`);
        throw new Error('read ECONNRESET');
      })(),
      () => {
        cancelled = true;
      },
    );
    const batches: number[] = [];
    for await (const batch of chunks) batches.push(batch.length);
    expect(batches).toEqual([1]);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the drain meets the reset: nothing more to do
    expect(cancelled).toBe(false);
  });

  it('a reply read whole from an upstream that keeps its body open after [DONE] still ends at once', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, IDLE_TIMEOUT_MS: '60000' }));
    h.fake.script({ kind: 'whole', text: 'All of it at once.', openAfterDone: true });
    const res = await ask(handler);
    expect(await res.text()).toBe('All of it at once.');
  });
});

describe('an upstream reply’s tokens (lib/upstream/target.ts)', () => {
  it('return() while a read waits on a stalled upstream: settles at once, and the upstream connection closes', async () => {
    let release = () => {};
    const stalled = new Promise<void>((resolve) => {
      release = resolve;
    });
    h.fake.script({ kind: 'pause', afterTokens: 2, until: stalled });
    const config = testConfig({ OPENAI_BASE_URL: h.fake.url });
    const target = createUpstreamTarget({
      provider: 'main',
      apiKey: TEST_KEY,
      baseURL: h.fake.url,
      systemPrompt: '',
      models: config.models,
      tools: [],
      startDeadlineMs: 10_000,
    });
    const request: ChatRequest = {
      messages: [{ role: 'user', content: 'stall after two' }],
      model: config.defaultModel,
      maxTokens: 100,
      temperature: undefined,
      reasoningEffort: undefined,
      messageId: undefined,
    };
    const reply = await target.open(request, config.defaultModel, new AbortController().signal, {
      firstTokenMs: 10_000,
      idleMs: 60_000,
    });
    const tokens = reply.tokens[Symbol.asyncIterator]();
    for (let read = 0; read < 2; read++) expect((await tokens.next()).done).toBe(false);
    const waiting = tokens.next().then(
      () => 'answered',
      () => 'rejected',
    );
    await eventually(() => h.fake.calls.length === 1, 5_000);
    // Nothing more comes until `stalled` settles; the return must not wait for it.
    expect(await tokens.return?.()).toEqual({ done: true, value: undefined });
    expect(await waiting).toBe('rejected');
    await eventually(() => h.fake.calls[0]?.aborted === true, 5_000);
    release();
  });
});
