import { describe, expect, it } from 'vitest';
import { type Behaviour, faults } from '../fake-upstream';
import { loadConfig } from '../lib/config';
import type { RequestLog } from '../lib/log';
import {
  buildHandler,
  chatRequest,
  eventually,
  TEST_KEY,
  testConfig,
  useHarness,
  userSays,
} from './support/harness';
import { chatLikeUseChat, userMessage } from './support/ui';

const h = await useHarness();

/** Every byte a client could see: status line aside, the headers and the body. */
async function visible(res: Response): Promise<string> {
  return `${JSON.stringify([...res.headers])}\n${await res.text()}`;
}

function expectNoSecret(...outputs: string[]): void {
  for (const output of outputs) {
    expect(output).not.toContain(TEST_KEY);
    expect(output).not.toContain('SECRET');
    expect(output).not.toMatch(/sk-[A-Za-z0-9*]{4,}/);
  }
}

describe('failures before the first token get a real status and a clean JSON error', () => {
  const rows: [name: string, behaviour: Behaviour, status: number, code: string, message: RegExp][] = [
    ['an invalid key (401)', faults.unauthorized(), 502, 'upstream_auth', /not set up correctly/],
    [
      'a spent quota (429 insufficient_quota)',
      faults.insufficientQuota(),
      503,
      'upstream_quota',
      /unavailable right now/,
    ],
    ['a rate limit (429)', faults.rateLimited(7), 503, 'upstream_rate_limited', /busy right now/],
    ['an unknown model (404)', faults.modelNotFound(), 502, 'upstream_model', /unavailable right now/],
    [
      'a context overflow (400)',
      faults.contextLength(),
      400,
      'context_too_long',
      /Start a new chat or shorten/,
    ],
    ['a server error (500)', faults.serverError(500), 502, 'upstream_unavailable', /unavailable right now/],
    ['an overload (503)', faults.serverError(503), 502, 'upstream_unavailable', /unavailable right now/],
    ['an empty stream', { kind: 'reply', text: '' }, 502, 'upstream_empty', /empty reply/],
    [
      'a connection cut before any token',
      { kind: 'cut', afterTokens: 0 },
      502,
      'upstream_unreachable',
      /unavailable/,
    ],
  ];

  it.each(rows)('%s', async (_name, behaviour, status, code, message) => {
    h.fake.script(behaviour);
    const res = await h.handler(chatRequest(userSays('Hi')));
    expect(res.status).toBe(status);
    const text = await visible(res.clone());
    const body = (await res.json()) as {
      error: { code: string; message: string; type: string; request_id: string };
    };
    expect(body.error).toMatchObject({ code, request_id: res.headers.get('x-request-id') });
    expect(body.error.message).toMatch(message);
    // Upstream internals (its wording, org ids, hostnames) stay in the log.
    expect(text).not.toMatch(
      /org-internal|gpu-17|maximum context length|exceeded your current quota|Incorrect API key/,
    );
    expect(h.fake.calls).toHaveLength(1);
    expectNoSecret(text, JSON.stringify(h.logs));
    expect(h.logs[0]).toMatchObject({ status, error_code: code, outcome: 'rejected' });
  });

  it('passes a rate-limited upstream’s retry-after on to the client', async () => {
    h.fake.script(faults.rateLimited(7));
    const res = await h.handler(chatRequest(userSays('Hi')));
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('logs what the upstream said, with the key redacted, for the operator', async () => {
    h.fake.script(faults.serverError(500));
    await h.handler(chatRequest(userSays('Hi')));
    expect(h.logs[0]?.level).toBe('error');
    expect(h.logs[0]?.error_detail).toContain('gpu-17.internal');
  });

  it('never leaks the key when the upstream echoes it back in a 401', async () => {
    // A handler whose key the fake rejects: the fake answers with the key it was given, as real providers do.
    const config = loadConfig({
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'test-model',
    });
    const logs: RequestLog[] = [];
    const wrongKeyFake = buildHandler(config, { logs, apiKey: `${TEST_KEY}-wrong` });
    const res = await wrongKeyFake(chatRequest(userSays('Hi')));
    expect(res.status).toBe(502);
    const text = await visible(res);
    expect(logs[0]?.error_detail).toContain('Incorrect API key provided: [redacted]');
    expectNoSecret(text, JSON.stringify(logs));
  });

  it('answers an unreachable upstream with 502, without hanging', async () => {
    const config = testConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' });
    const logs: RequestLog[] = [];
    const handler = buildHandler(config, { logs });
    const res = await handler(chatRequest(userSays('Hi')));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('upstream_unreachable');
    expect(logs[0]?.error_detail).toMatch(/Connection error|ECONNREFUSED/);
  });
});

describe('failures after the first token go inside the stream, which ends cleanly', () => {
  const midStream: [name: string, behaviour: Behaviour][] = [
    ['a cut connection', { kind: 'cut', afterTokens: 2, text: 'Partial answer that never ends' }],
    ['malformed SSE', { kind: 'malformed', afterTokens: 2, text: 'Partial answer that never ends' }],
  ];

  it.each(midStream)('%s: useChat keeps the partial text and gets an error', async (_name, behaviour) => {
    h.fake.script(behaviour);
    const result = await chatLikeUseChat(h.handler, [userMessage('Hi')]);
    expect(result.text).toBe('Partial answer ');
    expect(result.errors).toEqual(['The reply was interrupted. Please try again.']);
    await eventually(() => h.logs.length === 1);
    expect(h.logs[0]).toMatchObject({ status: 200, outcome: 'error', error_code: 'upstream_interrupted' });
  });

  it.each(midStream)('%s: curl sees the partial text and a clear last line', async (_name, behaviour) => {
    h.fake.script(behaviour);
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(
      'Partial answer \n\n[error] The reply was interrupted. Please try again.\n',
    );
  });

  it('streams a very long answer completely', async () => {
    h.fake.script({ kind: 'long', tokens: 5_000 });
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    const text = await res.text();
    expect(text.split(' ').filter(Boolean)).toHaveLength(5_000);
    expect(text.startsWith('word0 word1 ')).toBe(true);
  });
});
