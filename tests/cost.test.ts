import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { faults } from '../fake-upstream';
import { ConfigError, loadConfig } from '../lib/config';
import { CATALOGUE } from '../lib/cost/catalogue';
import { costMicros, toUsd, wholeMicros, worstCaseMicros } from '../lib/cost/cost';
import { findPrice, type ModelPrice } from '../lib/cost/price-table';
import { createPricing, type UnknownPriceNotice } from '../lib/cost/pricing';
import { amountUsed, costFields, usageOf } from '../lib/cost/reply-cost';
import { operatorTokenBound, PER_MESSAGE, promptTokenBound } from '../lib/limits/token-bound';
import type { LogLine, RequestLog } from '../lib/log';
import type { ChatMetadata, ChatRequest, Usage } from '../lib/types';
import type { Served, ServedReply } from '../lib/upstream/failover';
import { withConfigFiles } from '../server/config-files';
import { buildPriceTable, installedVersion } from '../server/price-catalogue';
import { buildHandler, eventually, startHarness, TEST_KEY, testConfig } from './support/harness';
import { chatLikeUseChat, userMessage } from './support/ui';

const usage = (u: Partial<Usage> & Pick<Usage, 'promptTokens' | 'completionTokens'>): Usage => ({
  reasoningTokens: undefined,
  totalTokens: u.promptTokens + u.completionTokens,
  ...u,
});

const price = (model: string): ModelPrice => {
  const found = findPrice(CATALOGUE, {}, model);
  if (!found) throw new Error(`no price for ${model}`);
  return found;
};

describe('cost arithmetic', () => {
  it('prices uncached prompt, cached prompt, answer and reasoning tokens each at their own rate', () => {
    // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
    const mini = usage({ promptTokens: 1_000, cachedPromptTokens: 400, completionTokens: 500 });
    expect(costMicros(mini, price('gpt-4o-mini'))).toBeCloseTo(600 * 0.15 + 400 * 0.075 + 500 * 0.6, 9);
    // o3: reasoning tokens are part of the completion and billed at the output price ($8), cached input at $0.50.
    const o3 = usage({
      promptTokens: 2_000,
      cachedPromptTokens: 1_000,
      completionTokens: 3_000,
      reasoningTokens: 2_500,
    });
    expect(costMicros(o3, price('o3'))).toBeCloseTo(1_000 * 2 + 1_000 * 0.5 + 500 * 8 + 2_500 * 8, 9);
  });

  it('uses an operator reasoning price when there is one, and the input price for cached tokens when there is none', () => {
    const custom: ModelPrice = { input: 1, output: 2, reasoning: 10 };
    const u = usage({ promptTokens: 100, cachedPromptTokens: 60, completionTokens: 50, reasoningTokens: 20 });
    expect(costMicros(u, custom)).toBe(100 * 1 + 30 * 2 + 20 * 10);
  });

  it('switches to the long-context tier once the prompt passes it', () => {
    const p = price('gpt-5.4');
    expect(p.longContext?.aboveInputTokens).toBe(271_999);
    expect(costMicros(usage({ promptTokens: 271_999, completionTokens: 0 }), p)).toBeCloseTo(
      271_999 * 2.5,
      6,
    );
    expect(costMicros(usage({ promptTokens: 272_000, completionTokens: 10 }), p)).toBeCloseTo(
      272_000 * 5 + 10 * 22.5,
      6,
    );
  });

  it('never trusts counts that do not add up: cached and reasoning tokens are capped by their totals', () => {
    const odd = usage({ promptTokens: 10, cachedPromptTokens: 50, completionTokens: 5, reasoningTokens: 9 });
    expect(costMicros(odd, { input: 1, cachedInput: 0.5, output: 2, reasoning: 3 })).toBe(10 * 0.5 + 5 * 3);
  });

  it('reserves the worst case: every prompt token uncached, every output token at the dearer rate', () => {
    expect(worstCaseMicros({ input: 1, cachedInput: 0.5, output: 2, reasoning: 3 }, 100, 10)).toBe(130);
    expect(worstCaseMicros(price('gpt-4o-mini'), 1_000, 1_000)).toBeCloseTo(750, 9);
  });

  it('rounds up to whole micro-dollars without float noise, and to nano-dollars in USD', () => {
    expect(wholeMicros(100 * 0.15)).toBe(15); // 15.000000000000002 in floating point
    expect(wholeMicros(15.2)).toBe(16);
    expect(wholeMicros(0)).toBe(0);
    expect(toUsd(100 * 0.15)).toBe(0.000015);
  });
});

describe('a reply cut before its usage chunk', () => {
  const request: ChatRequest = {
    messages: [{ role: 'user', content: 'Tell me a long story, please.' }],
    model: 'priced',
    maxTokens: 100,
    temperature: undefined,
    reasoningEffort: undefined,
    messageId: undefined,
  };
  const cut = (deltas: number, fallback: Served['fallback'] = 'none'): ServedReply => ({
    tokens: { [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) },
    outcome: { deltas },
    served: { model: 'priced', provider: undefined, attempts: 1, fallback },
  });
  const pricing = createPricing({
    cost: loadConfig({ OPENAI_API_KEY: TEST_KEY, MODEL_PRICES: '{"priced": {"input": 2, "output": 8}}' })
      .cost,
    fallbackModels: [],
    spendLimited: true,
    notice: () => {},
  });
  const weather = {
    name: 'get_weather',
    description: 'The weather where the user is.',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  };
  const system = operatorTokenBound('You are a careful assistant.', [weather]);

  it('bounds what the operator adds to every prompt: the system prompt, and each tool as its JSON and a frame', () => {
    const bare = operatorTokenBound('You are a careful assistant.', []);
    expect(bare).toBe('You are a careful assistant.'.length + PER_MESSAGE);
    expect(system - bare).toBe(JSON.stringify([weather]).length + PER_MESSAGE);
    expect(operatorTokenBound('', [])).toBe(0);
    // Loaded once into the config, from SYSTEM_PROMPT and TOOLS.
    const config = loadConfig({
      OPENAI_API_KEY: TEST_KEY,
      SYSTEM_PROMPT: 'You are a careful assistant.',
      TOOLS: JSON.stringify([weather]),
    });
    expect(config.operatorTokens).toBe(system);
  });

  it('is charged its prompt at the reservation’s bound, system prompt and tools included, and a token a delta streamed', () => {
    const prompt = promptTokenBound(request, system);
    expect(prompt).toBeGreaterThan(Math.ceil('Tell me a long story, please.'.length / 4) + 40); // not text ÷ 4
    expect(usageOf(cut(5), request, system)).toEqual({
      promptTokens: prompt,
      completionTokens: 5,
      reasoningTokens: undefined,
      totalTokens: prompt + 5,
    });
    // Both budgets settle to the same usage, and the log line reports the same cost.
    const micros = prompt * 2 + 5 * 8;
    expect(amountUsed(cut(5), request, pricing, system)).toEqual({ tokens: prompt + 5, micros });
    expect(costFields(pricing, cut(5), request, system)).toEqual({ cost_usd: toUsd(micros) });
  });

  it('costs nothing for the operator’s fallback message', () => {
    expect(amountUsed(cut(5, 'message'), request, pricing, system)).toEqual({ tokens: 0, micros: 0 });
  });
});

describe('price table', () => {
  it('is what `npm run prices` makes of the pinned package (run it after bumping @pydantic/genai-prices)', () => {
    const asOf = (CATALOGUE as { asOf?: string }).asOf ?? '';
    expect(CATALOGUE).toEqual(buildPriceTable(installedVersion(), asOf));
  });

  it.each([
    'gpt-4o-mini',
    'gpt-4o-mini-2024-07-18',
    'gpt-4o',
    'gpt-4.1-nano',
    'gpt-5',
    'gpt-5-mini',
    'o1',
    'o3',
    'o3-mini',
    'o4-mini',
  ])('gives the package’s own total for %s today (catches a price that has since changed)', (model) => {
    const u = { input_tokens: 12_345, cache_read_tokens: 2_345, output_tokens: 6_789 };
    const theirs = calcPrice(u, model, { providerId: 'openai' });
    const ours = costMicros(
      usage({ promptTokens: 12_345, cachedPromptTokens: 2_345, completionTokens: 6_789 }),
      price(model),
    );
    expect(theirs).not.toBeNull();
    expect(ours / 1e6).toBeCloseTo(theirs?.total_price ?? Number.NaN, 9);
  });

  it('matches dated snapshots, router prefixes, prefixes and case, and knows nothing of unknown models', () => {
    const mini = price('gpt-4o-mini');
    expect(findPrice(CATALOGUE, {}, 'gpt-4o-mini-2024-07-18')).toEqual(mini);
    expect(findPrice(CATALOGUE, {}, 'openai/gpt-4o-mini')).toEqual(mini);
    expect(findPrice(CATALOGUE, {}, 'GPT-4o-Mini')).toEqual(mini);
    expect(findPrice(CATALOGUE, {}, 'gpt-4.1-2031-01-01')).toEqual(price('gpt-4.1'));
    expect(findPrice(CATALOGUE, {}, 'gpt-5-nano-preview')).toEqual(price('gpt-5-nano'));
    expect(findPrice(CATALOGUE, {}, 'ft:gpt-4o-mini-2024-07-18:acme::abc123')).toMatchObject({ input: 0.3 });
    expect(findPrice(CATALOGUE, {}, 'llama-3.1-8b-instant')).toBeUndefined();
    expect(findPrice(CATALOGUE, {}, 'test-model')).toBeUndefined();
  });

  it('lets the operator’s price win over the table, dated snapshots included', () => {
    const mine = { 'gpt-4o-mini': { input: 1, output: 2 } };
    expect(findPrice(CATALOGUE, mine, 'gpt-4o-mini-2024-07-18')).toEqual({ input: 1, output: 2 });
    expect(findPrice(CATALOGUE, mine, 'gpt-4o')).toEqual(price('gpt-4o'));
  });
});

describe('unknown prices', () => {
  it('are unknown, never $0, and each model is reported once per proxy', () => {
    const notices: UnknownPriceNotice[] = [];
    const options = { cost: { overrides: {} }, fallbackModels: [], spendLimited: false };
    const pricing = createPricing({ ...options, notice: (line) => notices.push(line) });
    const u = usage({ promptTokens: 10, completionTokens: 10 });
    expect(pricing.costUsd('mystery-model-a', u)).toBeUndefined();
    expect(pricing.costUsd('mystery-model-a', u)).toBeUndefined();
    expect(pricing.costUsd('mystery-model-b', u)).toBeUndefined();
    expect(notices.map((n) => [n.level, n.msg, n.model])).toEqual([
      ['warn', 'model_price_unknown', 'mystery-model-a'],
      ['warn', 'model_price_unknown', 'mystery-model-b'],
    ]);
    expect(notices[0]?.detail).toContain('MODEL_PRICES');
    // Another proxy (a test's, with a logger of its own) hears of the model too.
    const other: UnknownPriceNotice[] = [];
    createPricing({ ...options, notice: (line) => other.push(line) }).costUsd('mystery-model-a', u);
    expect(other.map((n) => n.model)).toEqual(['mystery-model-a']);
  });
});

describe('MODEL_PRICES', () => {
  const env = { OPENAI_API_KEY: TEST_KEY, CHAT_MODEL: 'my-model' };
  const failure = (value: string, extra: Record<string, string> = {}) => {
    try {
      loadConfig({ ...env, MODEL_PRICES: value, ...extra });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('prices a model the table does not know, by lowercased id', () => {
    const config = loadConfig({
      ...env,
      MODEL_PRICES: '{"My-Model": {"input": 0.15, "cachedInput": 0.075, "output": 0.6}}',
    });
    expect(config.cost.overrides).toEqual({ 'my-model': { input: 0.15, cachedInput: 0.075, output: 0.6 } });
  });

  it.each([
    ['not json', 'must be JSON: USD per million tokens by model'],
    ['[1, 2]', 'must be an object of prices by model'],
    ['{"my-model": {"input": -1, "output": 1}}', 'my-model.input: must be 0 or more'],
    ['{"my-model": {"input": "0.1", "output": 1}}', 'my-model.input: must be a number'],
    ['{"my-model": {"input": 1}}', 'my-model: needs both input and output'],
    [
      '{"my-model": {"input": 1, "output": 2, "cached_input": 1}}',
      'my-model: must be an object with input, output',
    ],
    ['{"bad model!": {"input": 1, "output": 2}}', 'is not a model name'],
  ])('refuses %s, saying why', (value, message) => {
    const text = failure(value);
    expect(text).toContain('MODEL_PRICES');
    expect(text).toContain(message);
  });

  it('is read from MODEL_PRICES_FILE on the Node server, with clear refusals', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prices-'));
    const file = (name: string, content: string) => {
      writeFileSync(join(dir, name), content);
      return join(dir, name);
    };
    try {
      const good = file('good.json', '{"My-Model": {"input": 1, "output": 2}}');
      const config = loadConfig(withConfigFiles({ ...env, MODEL_PRICES_FILE: good }));
      expect(config.cost.overrides).toEqual({ 'my-model': { input: 1, output: 2 } });
      const fromFile =
        (path: string, extra: Record<string, string> = {}) =>
        () =>
          loadConfig(withConfigFiles({ ...env, MODEL_PRICES_FILE: path, ...extra }));
      expect(fromFile(join(dir, 'missing.json'))).toThrow(
        /MODEL_PRICES_FILE cannot be read \(ENOENT\): it must be the path of a JSON file of USD prices/,
      );
      expect(fromFile(dir)).toThrow(/MODEL_PRICES_FILE cannot be read \(EISDIR\)/);
      expect(fromFile(file('bad.json', '{"my-model": {'))).toThrow(/MODEL_PRICES_FILE is not valid JSON/);
      // Valid JSON, bad price: judged like MODEL_PRICES itself, since the file is its content.
      expect(fromFile(file('negative.json', '{"my-model": {"input": -1, "output": 1}}'))).toThrow(
        /MODEL_PRICES my-model.input: must be 0 or more/,
      );
      expect(fromFile(good, { MODEL_PRICES: '{}' })).toThrow(
        /MODEL_PRICES_FILE and MODEL_PRICES are both set/,
      );
      // The edge has no file system: the variable reaches lib/config unread, and is refused there.
      expect(failure('{}', { MODEL_PRICES_FILE: good })).toMatch(
        /MODEL_PRICES_FILE is read by the Node server only/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is required, under a spend limit, for every model that may answer', () => {
    const spend = {
      SPEND_BUDGET_USD: '5',
      ALLOWED_MODELS: 'my-model,gpt-4o-mini',
      FALLBACK_MODELS: 'other-model',
    };
    const text = failure('{"my-model": {"input": 1, "output": 2}}', spend);
    expect(text).toContain('MODEL_PRICES has no price for "other-model"');
    expect(text).not.toContain('"gpt-4o-mini"');
    const global = { GLOBAL_SPEND_BUDGET_USD: '100' };
    expect(failure('{}', global)).toContain('no price for "my-model"');
    // Without a spend limit an unpriced model is allowed: its cost is logged as unknown.
    expect(loadConfig(env).cost.overrides).toEqual({});
  });

  it('reads spend limits as micro-dollars, and refuses amounts that are not', () => {
    const priced = { ...env, MODEL_PRICES: '{"my-model": {"input": 1, "output": 2}}' };
    const config = loadConfig({
      ...priced,
      SPEND_BUDGET_USD: '2.50',
      SPEND_BUDGET_WINDOW: '7 d',
      GLOBAL_SPEND_BUDGET_USD: '100',
    });
    expect(config.rateLimit.spend).toEqual({
      budgetMicros: 2_500_000,
      windowMs: 7 * 86_400_000,
      globalDailyMicros: 100_000_000,
    });
    expect(loadConfig(priced).rateLimit.spend).toMatchObject({ budgetMicros: 0, globalDailyMicros: 0 });
    expect(() => loadConfig({ ...priced, SPEND_BUDGET_USD: 'five' })).toThrow(
      /SPEND_BUDGET_USD must be an amount in USD/,
    );
    expect(() => loadConfig({ ...priced, GLOBAL_SPEND_BUDGET_USD: '-3' })).toThrow(
      /GLOBAL_SPEND_BUDGET_USD must be greater than 0/,
    );
  });
});

const h = await startHarness({
  MODEL_PRICES: '{"test-model": {"input": 2, "cachedInput": 0.5, "output": 8}}',
});

describe('cost of a reply, end to end', () => {
  it('is in the log line and the finish metadata, cached tokens at their own rate', async () => {
    h.fake.script({ kind: 'reply', text: 'Hello there', usage: { promptTokens: 1_000, cachedTokens: 800 } });
    const result = await chatLikeUseChat(h.handler, [userMessage('Hi')]);
    expect(result.text).toBe('Hello there');
    const completion = h.fake.calls[0]?.tokensSent ?? 0;
    expect(completion).toBeGreaterThan(0);
    const expected = toUsd(200 * 2 + 800 * 0.5 + completion * 8);
    const metadata = result.message?.metadata as ChatMetadata;
    expect(metadata.costUsd).toBe(expected);
    expect(metadata.usage).toMatchObject({ promptTokens: 1_000 });
    await eventually(() => h.logs.some((l) => l.outcome === 'complete'));
    const line = h.logs.find((l) => l.outcome === 'complete');
    expect(line?.cost_usd).toBe(expected);
    expect(line?.usage).toMatchObject({ prompt_tokens: 1_000, cached_tokens: 800 });
  });

  it('is unknown for a model without a price: no cost in the metadata, `unknown` in the log', async () => {
    const logs: RequestLog[] = [];
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'unpriced-model',
      ALLOWED_MODELS: 'unpriced-model',
    });
    const result = await chatLikeUseChat(buildHandler(config, { logs }), [userMessage('Hi')]);
    expect(result.errors).toEqual([]);
    const metadata = result.message?.metadata as ChatMetadata;
    expect(metadata.usage).toBeDefined();
    expect(metadata).not.toHaveProperty('costUsd');
    await eventually(() => logs.some((l) => l.outcome === 'complete'));
    expect(logs.find((l) => l.outcome === 'complete')?.cost_usd).toBe('unknown');
  });

  it('is reported through the platform’s logger, once per model, next to the request lines', async () => {
    const logs: RequestLog[] = [];
    const notices: LogLine[] = [];
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'unpriced-model',
      ALLOWED_MODELS: 'unpriced-model',
    });
    const handler = buildHandler(config, { logs, notices });
    for (const text of ['Hi', 'Again']) await chatLikeUseChat(handler, [userMessage(text)]);
    await eventually(() => logs.filter((l) => l.outcome === 'complete').length === 2);
    expect(notices).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'model_price_unknown', model: 'unpriced-model' }),
    ]);
  });

  it('is 0 for the operator’s fallback message: no model generated it', async () => {
    const logs: RequestLog[] = [];
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      FALLBACK_MESSAGE: 'We are busy, sorry.',
      MODEL_PRICES: '{"test-model": {"input": 2, "output": 8}}',
      UPSTREAM_MAX_ATTEMPTS: '1',
    });
    h.fake.script(faults.unauthorized());
    const result = await chatLikeUseChat(buildHandler(config, { logs }), [userMessage('Hi')]);
    expect(result.text).toBe('We are busy, sorry.');
    await eventually(() => logs.length > 0);
    expect(logs[0]).toMatchObject({ fallback: 'message', cost_usd: 0 });
  });
});
