import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../fake-upstream';
import type { RequestLog } from '../lib/log';
import { buildHandler, chatRequest, eventually, TEST_KEY, testConfig, userSays } from './support/harness';
import { chatLikeUseChat, userMessage } from './support/ui';

/**
 * Today's models, against fakes that behave like them: an OpenAI-style reasoning model (refuses `max_tokens` and a
 * non-default `temperature`, streams `reasoning_content`, reports `reasoning_tokens`) and an OpenRouter-style one
 * (streams `delta.reasoning`). Everything is read back through the ai SDK's own client.
 */
let strict: FakeUpstream;
let router: FakeUpstream;
beforeAll(async () => {
  const models = /^(o\d|gpt-5)|thinker/;
  strict = await startFakeUpstream({
    apiKey: TEST_KEY,
    reasoning: { models, field: 'reasoning_content', strict: true },
  });
  router = await startFakeUpstream({
    apiKey: TEST_KEY,
    reasoning: { models, field: 'reasoning', strict: false },
  });
});
afterAll(async () => {
  await strict.close();
  await router.close();
});

function handlerFor(fake: FakeUpstream, env: Record<string, string> = {}, logs?: RequestLog[]) {
  fake.reset();
  const config = testConfig({
    OPENAI_BASE_URL: fake.url,
    CHAT_MODEL: 'o3-mini',
    ALLOWED_MODELS: 'o3-mini,custom-thinker,slow-thinker,test-model',
    ...env,
  });
  return buildHandler(config, logs ? { logs } : {});
}

const reasoningText = (parts: readonly { type: string; text?: string }[] = []) =>
  parts.map((p) => (p.type === 'reasoning' ? p.text : '')).join('');

describe('a reasoning model with no configuration', () => {
  it('streams reasoning parts, then the text, with 200 and one upstream call, sending the parameters it accepts', async () => {
    const handler = handlerFor(strict, { REASONING_EFFORT: 'low' });
    const ui = await chatLikeUseChat(handler, [userMessage('Why is the sky blue?')], {
      body: { temperature: 0.2 },
    });
    expect(ui.errors).toEqual([]);
    expect(reasoningText(ui.message?.parts)).toContain('Why is the sky blue?');
    expect(ui.text).toContain('Why is the sky blue?');
    expect(ui.message?.parts.map((p) => p.type).filter((t) => t !== 'step-start')).toEqual([
      'reasoning',
      'text',
    ]);
    expect(strict.calls).toHaveLength(1);
    const sent = strict.calls[0]?.body ?? {};
    expect(sent.max_completion_tokens).toBe(1024);
    expect(sent).not.toHaveProperty('max_tokens');
    expect(sent).not.toHaveProperty('temperature');
    expect(sent.reasoning_effort).toBe('low');
  });

  it('tells the UI the model and, at the end, the usage with its reasoning tokens and the finish reason', async () => {
    const handler = handlerFor(strict);
    const ui = await chatLikeUseChat(handler, [userMessage('Hello')]);
    const call = strict.calls[0];
    expect(ui.message?.metadata).toMatchObject({
      model: 'o3-mini',
      finishReason: 'stop',
      usage: {
        reasoningTokens: call?.reasoningSent,
        completionTokens: (call?.reasoningSent ?? 0) + (call?.tokensSent ?? 0),
      },
    });
    expect(call?.reasoningSent).toBeGreaterThan(0);
  });

  it('also reads reasoning streamed as `delta.reasoning` (OpenRouter, Groq)', async () => {
    const ui = await chatLikeUseChat(handlerFor(router), [userMessage('Think aloud')]);
    expect(reasoningText(ui.message?.parts)).toContain('Think aloud');
    expect(ui.text).toContain('Think aloud');
  });

  it('leaves reasoning out of plain text unless REASONING_IN_TEXT=on, which marks it', async () => {
    const ask = (env: Record<string, string>) =>
      handlerFor(strict, env)(chatRequest(userSays('Plain'), { headers: { accept: 'text/plain' } }));
    const plain = await (await ask({})).text();
    expect(plain).not.toContain('think it through');
    const shown = await (await ask({ REASONING_IN_TEXT: 'on' })).text();
    expect(shown).toMatch(/^\[reasoning\]\n.*think it through.*\n\[\/reasoning\]\n\n/s);
  });

  it('counts the first reasoning delta as the first token: thinking longer than the deadline is not a 504', async () => {
    const paced = await startFakeUpstream({
      apiKey: TEST_KEY,
      tokenDelayMs: 90, // 18 thoughts at 90 ms: the answer's first text comes ~1.5 s in, past the 1 s deadline
      reasoning: { models: /thinker/, field: 'reasoning_content', strict: false },
    });
    try {
      const config = {
        FIRST_TOKEN_TIMEOUT_MS: '1000',
        UPSTREAM_MAX_ATTEMPTS: '1',
        CHAT_MODEL: 'custom-thinker',
      };
      const handler = handlerFor(paced, config);
      const res = await handler(chatRequest(userSays('Slow thought'), { headers: { accept: 'text/plain' } }));
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('Slow thought');
      expect(paced.calls).toHaveLength(1);
    } finally {
      await paced.close();
    }
  });

  it('charges reasoning tokens to the budget: they are part of the completion', async () => {
    const logs: RequestLog[] = [];
    const handler = handlerFor(router, { CHAT_MODEL: 'custom-thinker', TOKEN_BUDGET: '100000' }, logs);
    const ask = () => handler(chatRequest(userSays('Count me'), { headers: { accept: 'text/plain' } }));
    const tokensLeft = (res: Response) =>
      Number(/"tokens";r=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1]);
    const first = await ask();
    await first.text();
    await eventually(() => logs.length === 1); // logged once its reservation was settled
    const second = await ask();
    await second.text();
    const call = router.calls[0];
    const thoughts = call?.reasoningSent ?? 0;
    expect(thoughts).toBeGreaterThan(0);
    const used =
      Math.ceil(JSON.stringify(call?.body.messages).length / 4) + (call?.tokensSent ?? 0) + thoughts;
    // Both reserve the same worst case, so the difference is what the first one really cost, thinking included.
    expect(tokensLeft(first) - tokensLeft(second)).toBe(used);
  });

  it('ends a reply that only thought and said nothing with a clear error, not silence', async () => {
    const handler = handlerFor(strict);
    strict.script({ kind: 'reasoning-only' });
    const ui = await chatLikeUseChat(handler, [userMessage('Anything?')]);
    expect(reasoningText(ui.message?.parts)).not.toBe('');
    expect(ui.errors).toEqual(['The assistant returned an empty reply. Please try again.']);
  });
});

describe('parameters that adapt once', () => {
  it('fixes a refused token parameter with exactly one extra call the first time, and none after', async () => {
    const logs: RequestLog[] = [];
    const handler = handlerFor(strict, { CHAT_MODEL: 'custom-thinker' }, logs);
    const first = await handler(chatRequest(userSays('One'), { headers: { accept: 'text/plain' } }));
    expect(first.status).toBe(200);
    await first.text();
    expect(strict.calls.map((c) => 'max_tokens' in c.body)).toEqual([true, false]);
    await eventually(() => logs.length === 1);
    expect(logs[0]?.adapted).toBe('custom-thinker: max_tokens→max_completion_tokens');
    const second = await handler(chatRequest(userSays('Two'), { headers: { accept: 'text/plain' } }));
    await second.text();
    expect(strict.calls).toHaveLength(3);
    expect(strict.calls[2]?.body.max_completion_tokens).toBe(1024);
  });

  it('drops a refused temperature the same way', async () => {
    const handler = handlerFor(strict, {
      CHAT_MODEL: 'custom-thinker',
      MODEL_OPTIONS: '{"custom-thinker":{"tokenParam":"max_completion_tokens"}}',
    });
    // Two different questions: an identical one still in flight would share the first's reply (coalescing).
    const ask = (text: string) =>
      handler(chatRequest({ ...userSays(text), temperature: 0.7 }, { headers: { accept: 'text/plain' } }));
    expect((await ask('Hot')).status).toBe(200);
    expect((await ask('Hotter')).status).toBe(200);
    expect(strict.calls.map((c) => c.body.temperature)).toEqual([0.7, undefined, undefined]);
  });

  it('lets the operator set a model its own first-token deadline (MODEL_OPTIONS)', async () => {
    const env = {
      FIRST_TOKEN_TIMEOUT_MS: '150',
      UPSTREAM_MAX_ATTEMPTS: '1',
      MODEL_OPTIONS: '{"slow-*":{"firstTokenTimeoutMs":3000}}',
    };
    const handler = handlerFor(router, env);
    router.script({ kind: 'slow-first-token', delayMs: 400 }, { kind: 'slow-first-token', delayMs: 400 });
    const patient = await handler(chatRequest({ ...userSays('Think'), model: 'slow-thinker' }));
    expect(patient.status).toBe(200);
    await patient.text();
    const impatient = await handler(chatRequest({ ...userSays('Think'), model: 'test-model' }));
    expect(impatient.status).toBe(504);
  });

  it('refuses a bad MODEL_OPTIONS at start, naming the variable', () => {
    expect(() => testConfig({ MODEL_OPTIONS: '{"x": {"tokenParam": "tokens"}}' })).toThrow(
      /MODEL_OPTIONS x\.tokenParam/,
    );
    expect(() => testConfig({ MODEL_OPTIONS: 'not json' })).toThrow(/MODEL_OPTIONS must be JSON/);
  });
});

describe('reasoning effort', () => {
  it('takes a client choice only from REASONING_EFFORTS, and names the field otherwise', async () => {
    const closed = handlerFor(strict);
    const refused = await closed(chatRequest({ ...userSays('Hi'), reasoningEffort: 'high' }));
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('reasoningEffort');
    const open = handlerFor(strict, { REASONING_EFFORTS: 'low,high' });
    const ok = await open(chatRequest({ ...userSays('Hi'), reasoningEffort: 'high' }));
    expect(ok.status).toBe(200);
    await ok.text();
    expect(strict.calls[0]?.body.reasoning_effort).toBe('high');
  });
});

describe('the UI learns the message id and why a reply stopped', () => {
  it('reuses the regenerated message id, and mints one otherwise', async () => {
    const handler = handlerFor(router, { CHAT_MODEL: 'test-model' });
    const again = await chatLikeUseChat(handler, [userMessage('Again')], { regenerate: 'assistant-7' });
    expect(again.message?.id).toBe('assistant-7');
    const fresh = await chatLikeUseChat(handler, [userMessage('New')]);
    expect(fresh.message?.id).toMatch(/^[\w-]{8,}$/);
    expect(fresh.message?.id).not.toBe('assistant-7');
  });

  it('passes a length cut on: finishReason in the metadata, a last line in plain text', async () => {
    const handler = handlerFor(router, { CHAT_MODEL: 'test-model' });
    router.script({ kind: 'reply', text: 'cut short', finishReason: 'length' });
    const ui = await chatLikeUseChat(handler, [userMessage('Long')]);
    expect(ui.message?.metadata?.finishReason).toBe('length');
    router.script({ kind: 'reply', text: 'cut short', finishReason: 'length' });
    const text = await (
      await handler(chatRequest(userSays('Long'), { headers: { accept: 'text/plain' } }))
    ).text();
    expect(text).toBe('cut short\n\n[stopped: reply reached the length limit]\n');
  });
});

describe('safety identifier', () => {
  it('sends a stable, non-reversible hash of the caller, per caller, and nothing with SAFETY_IDENTIFIER=off', async () => {
    const handler = handlerFor(router, { CHAT_MODEL: 'test-model' });
    const from = (ip: string) =>
      chatRequest(userSays('Hi'), { headers: { 'x-real-ip': ip, accept: 'text/plain' } });
    for (const ip of ['198.51.100.1', '198.51.100.1', '198.51.100.2']) await (await handler(from(ip))).text();
    // Not OpenAI's own base URL: the widely known `user` field carries it.
    const ids = router.calls.map((c) => c.body.user);
    expect(ids[0]).toMatch(/^acp_[0-9a-f]{32}$/);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(JSON.stringify(router.calls.map((c) => c.body))).not.toContain('198.51.100');
    const off = handlerFor(router, { CHAT_MODEL: 'test-model', SAFETY_IDENTIFIER: 'off' });
    await (await off(from('198.51.100.1'))).text();
    expect(router.calls[0]?.body).not.toHaveProperty('user');
  });
});
