import { describe, expect, it } from 'vitest';
import { FLAG_MARKER, FLAGGED_FOR } from '../fake-upstream/moderation';
import type { ChatHandler } from '../lib/chat-handler';
import { ConfigError, loadConfig } from '../lib/config';
import type { RequestLog } from '../lib/log';
import {
  buildHandler,
  chatRequest,
  eventually,
  startHarness,
  TEST_IP,
  testConfig,
  userSays,
} from './support/harness';

const h = await startHarness({ MODERATION: 'input' });

interface ErrorBody {
  error: { message: string; type: string; code: string; request_id: string };
}

const ask = (text: string, handler: ChatHandler = h.handler, ip = TEST_IP) =>
  handler(chatRequest(userSays(text), { headers: { accept: 'text/plain', 'x-real-ip': ip } }));

/** A handler on the same fake upstream with other settings, and its own log lines. */
function handlerWith(env: Record<string, string>, logs: RequestLog[] = []) {
  const waited: Promise<unknown>[] = [];
  const config = testConfig({ OPENAI_BASE_URL: h.fake.url, MODERATION: 'input', ...env });
  const handler = buildHandler(config, {
    logs,
    waitUntil: (promise) => void waited.push(promise),
  });
  return { handler, logs, settled: () => Promise.all(waited) };
}

describe('a clean message', () => {
  it('is checked once, then answered: one moderation call, one completion call', async () => {
    const conversation = {
      messages: [
        { role: 'user', content: `An earlier turn with ${FLAG_MARKER}` },
        { role: 'assistant', content: 'An earlier answer.' },
        { role: 'user', content: 'Hi there' },
      ],
    };
    const res = await h.handler(chatRequest(conversation, { headers: { accept: 'text/plain' } }));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Hi there');
    // Only the last user message: earlier turns were checked when they were sent.
    expect(h.fake.moderation.calls).toEqual([
      { model: 'omni-moderation-latest', input: 'Hi there', authorization: expect.any(String) },
    ]);
    expect(h.fake.calls).toHaveLength(1);
    await eventually(() => h.logs.length === 1);
    expect(h.logs[0]).toMatchObject({ status: 200, outcome: 'complete', moderation: 'passed' });
    expect(h.logs[0]).not.toHaveProperty('moderation_categories');
  });

  it('uses MODERATION_MODEL', async () => {
    const { handler } = handlerWith({ MODERATION_MODEL: 'text-moderation-stable' });
    await (await ask('Hi', handler)).text();
    expect(h.fake.moderation.calls.map((c) => c.model)).toEqual(['text-moderation-stable']);
  });
});

describe('a flagged message', () => {
  it('gets 400 content_flagged, never reaches the model, and is logged with its categories', async () => {
    const res = await ask(`You are an idiot ${FLAG_MARKER}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toEqual({
      code: 'content_flagged',
      type: 'invalid_request_error',
      message: "This message can't be sent because it may break the content rules. Please rephrase it.",
      request_id: res.headers.get('x-request-id'),
    });
    expect(h.fake.moderation.calls).toHaveLength(1);
    expect(h.fake.calls).toHaveLength(0);
    expect(h.logs).toHaveLength(1);
    expect(h.logs[0]).toMatchObject({
      level: 'warn',
      status: 400,
      outcome: 'rejected',
      error_code: 'content_flagged',
      moderation: 'flagged',
      moderation_categories: FLAGGED_FOR,
    });
    // The log says why, never what was said.
    expect(JSON.stringify(h.logs)).not.toContain('idiot');
  });

  it('is not charged to the token budget, though it counts as a request', async () => {
    const { handler, settled } = handlerWith({ TOKEN_BUDGET: '5000', MAX_OUTPUT_TOKENS: '100' });
    const quota = (res: Response) => {
      const header = res.headers.get('ratelimit') ?? '';
      return {
        requests: Number(/"requests";r=(\d+)/.exec(header)?.[1]),
        tokens: Number(/"tokens";r=(\d+)/.exec(header)?.[1]),
      };
    };
    const probe = async (ip: string) => {
      const res = await ask('Hi', handler, ip);
      await res.text();
      await settled();
      return quota(res);
    };
    // What a caller's first request sees: the budget less its own reservation.
    const fresh = await probe('198.51.100.60');

    const flagged = await ask(`Hi ${FLAG_MARKER}`, handler, '198.51.100.61');
    expect(flagged.status).toBe(400);
    await flagged.text();
    await settled();
    const afterFlagged = await probe('198.51.100.61');
    expect(afterFlagged.tokens).toBe(fresh.tokens);
    expect(afterFlagged.requests).toBe(fresh.requests - 1);

    // The same pair with a clean first message does cost tokens, so the header would have shown a charge.
    await (await ask('Hi', handler, '198.51.100.62')).text();
    await settled();
    const afterClean = await probe('198.51.100.62');
    expect(afterClean.tokens).toBeLessThan(fresh.tokens);
  });
});

describe('the moderation endpoint fails', () => {
  it('MODERATION_FAIL=open (default): the message goes through and the log says moderation was unavailable', async () => {
    h.fake.moderation.fail(500);
    const res = await ask('Hi');
    expect(res.status).toBe(200);
    await res.text();
    expect(h.fake.moderation.calls).toHaveLength(1);
    expect(h.fake.calls).toHaveLength(1);
    await eventually(() => h.logs.length === 1);
    expect(h.logs[0]).toMatchObject({ status: 200, outcome: 'complete', moderation: 'unavailable' });
    expect(h.logs[0]?.moderation_error).toMatch(/^moderation endpoint failed: 500 /);
  });

  it('open, and silent past MODERATION_TIMEOUT_MS: the message goes through', async () => {
    const { handler, logs, settled } = handlerWith({ MODERATION_TIMEOUT_MS: '50' });
    h.fake.moderation.fail('hang');
    const res = await ask('Hi', handler);
    expect(res.status).toBe(200);
    await res.text();
    await settled();
    expect(h.fake.calls).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      moderation: 'unavailable',
      moderation_error: 'moderation endpoint failed: no answer within 50 ms',
    });
  });

  it('MODERATION_FAIL=closed: 503 moderation_unavailable with Retry-After, and no upstream call', async () => {
    const { handler, logs } = handlerWith({ MODERATION_FAIL: 'closed' });
    h.fake.moderation.fail(503);
    const res = await ask('Hi', handler);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toMatchObject({ code: 'moderation_unavailable', type: 'server_error' });
    expect(body.error.message).toMatch(/can't be checked right now\. Please try again in a moment\.$/);
    expect(h.fake.calls).toHaveLength(0);
    expect(logs[0]).toMatchObject({
      level: 'error',
      status: 503,
      error_code: 'moderation_unavailable',
      moderation: 'unavailable',
    });
    expect(logs[0]?.error_detail).toMatch(/^moderation endpoint failed: 503 /);
  });
});

describe('MODERATION=off (the default)', () => {
  it('makes no moderation call at all', async () => {
    const logs: RequestLog[] = [];
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }), { logs });
    const res = await ask(`Hi ${FLAG_MARKER}`, handler);
    expect(res.status).toBe(200);
    await res.text();
    expect(h.fake.moderation.calls).toHaveLength(0);
    expect(h.fake.calls).toHaveLength(1);
    await eventually(() => logs.length === 1);
    expect(logs[0]).not.toHaveProperty('moderation');
  });
});

describe('a client that leaves while its message is checked', () => {
  it('is logged as closed (499), not as a moderation outage, and the model is never called', async () => {
    h.fake.moderation.fail('hang');
    const controller = new AbortController();
    const pending = h.handler(chatRequest(userSays('Hi'), { signal: controller.signal }));
    await eventually(() => h.fake.moderation.calls.length === 1);
    controller.abort();
    expect((await pending).status).toBe(499);
    expect(h.fake.calls).toHaveLength(0);
    expect(h.logs[0]).toMatchObject({ status: 499, error_code: 'client_closed_request' });
    expect(h.logs[0]).not.toHaveProperty('moderation');
  });
});

describe('configuration', () => {
  const KEY = 'sk-moderation-config-0123456789';

  it('is off by default, failing open, with OpenAI’s current model and a 3 s timeout', () => {
    expect(loadConfig({ OPENAI_API_KEY: KEY }).moderation).toEqual({
      mode: 'off',
      failMode: 'open',
      model: 'omni-moderation-latest',
      timeoutMs: 3000,
    });
  });

  it('names each bad variable, without echoing its value', () => {
    const bad = {
      OPENAI_API_KEY: KEY,
      MODERATION: 'everything',
      MODERATION_FAIL: 'maybe',
      MODERATION_TIMEOUT_MS: 'soon',
    };
    expect(() => loadConfig(bad)).toThrow(ConfigError);
    let message = '';
    try {
      loadConfig(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/MODERATION must be "off" or "input"/);
    expect(message).toMatch(/MODERATION_FAIL must be "open" or "closed"/);
    expect(message).toMatch(/MODERATION_TIMEOUT_MS must be a whole number/);
    expect(message).not.toMatch(/everything|maybe|soon/);
  });
});
