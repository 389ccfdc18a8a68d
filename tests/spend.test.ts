import { describe, expect, it } from 'vitest';
import type { ChatHandler } from '../lib/chat-handler';
import type { Config } from '../lib/config';
import { memoryLimitStores } from '../lib/limits/memory-store';
import { redisLimitStores } from '../lib/limits/redis-store';
import type { LimitStores } from '../lib/limits/stores';
import { promptTokenBound } from '../lib/limits/token-bound';
import type { RequestLog } from '../lib/log';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import { buildHandler, chatRequest, eventually, startHarness, testConfig, userSays } from './support/harness';
import { type RedisBackend, redisStoreEnv, uniquePrefix } from './support/redis';
import { tcpRedisForFile, upstashBridgeForFile } from './support/redis-for-file';

const h = await startHarness();
const bridge = await upstashBridgeForFile();
const tcp = tcpRedisForFile(1_000);

type Backend = RedisBackend | 'memory';
const BACKENDS: Backend[] = ['memory', 'tcp', 'rest'];

/** $100 per million tokens, in and out: 100 micro-dollars a token, so every amount below is easy to check. */
const PRICED = {
  MODEL_PRICES: JSON.stringify({
    'test-model': { input: 100, output: 100 },
    'test-model-large': { input: 1_000, output: 1_000 },
  }),
  MAX_OUTPUT_TOKENS: '100',
};
/** Noon of a UTC day, fixed: no test straddles midnight, when the daily cap starts again. */
const NOON = 20_000 * 86_400_000 + 12 * 3_600_000;
const TO_MIDNIGHT_S = String(12 * 3_600);

function env(backend: Backend, name: string, limits: Record<string, string>): Record<string, string> {
  const store = backend === 'memory' ? {} : redisStoreEnv(backend, name, bridge);
  // Each request is its own upstream call: the test holds each reply open by itself.
  return { OPENAI_BASE_URL: h.fake.url, COALESCE: 'off', ...PRICED, ...limits, ...store };
}

/** The worst case `userSays('Hi')` reserves: its prompt's bound at the input price, 100 output tokens at the output price. */
function worstCaseMicros(config: Config): number {
  return (promptTokenBound(userSays('Hi'), config.operatorTokens) + config.caps.maxOutputTokens) * 100;
}

interface Proxy {
  readonly handler: ChatHandler;
  readonly logs: RequestLog[];
  /** Resolves once every charge and log line so far is written. */
  settled(): Promise<unknown>;
}

function proxy(config: Config): Proxy {
  const logs: RequestLog[] = [];
  const pending: Promise<unknown>[] = [];
  const handler = buildHandler(config, {
    logs,
    waitUntil: (p) => void pending.push(p),
    _internal: { now: () => NOON },
  });
  return { handler, logs, settled: () => Promise.all(pending) };
}

const ask = (p: Proxy, ip: string) =>
  p.handler(chatRequest(userSays('Hi'), { headers: { 'x-real-ip': ip, accept: 'text/plain' } }));

/**
 * A reply that holds its reservation until released: one token, then the fake waits. Its usage is scripted (10 in,
 * 5 out: 1,500 micro-dollars), so what it settles to is known exactly.
 */
function heldReply() {
  let release = () => {};
  const until = new Promise<void>((resolve) => {
    release = resolve;
  });
  h.fake.script({ kind: 'pause', afterTokens: 1, until, text: 'one two three' });
  return release;
}

describe.each(BACKENDS)('spend budget per caller (%s)', (backend) => {
  it('reserves the worst case, settles to the real cost, and refuses with 429 what cannot fit', async () => {
    const config = testConfig(env(backend, 'spend', { SPEND_BUDGET_USD: '0.03' }));
    const worst = worstCaseMicros(config);
    expect(2 * worst).toBeLessThanOrEqual(30_000); // two reservations fit in $0.03...
    expect(3 * worst).toBeGreaterThan(30_000); // ...three do not
    const p = proxy(config);
    const releases = [heldReply(), heldReply()];
    const held = [await ask(p, '198.51.100.40'), await ask(p, '198.51.100.40')];
    expect(held.map((r) => r.status)).toEqual([200, 200]);

    const refused = await ask(p, '198.51.100.40');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe(TO_MIDNIGHT_S);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: 'spend_budget_exceeded' });
    expect(body.error.message).toMatch(/reached your spending limit.*try again in 12 hours/);
    const other = await ask(p, '198.51.100.41'); // another caller has a budget of its own
    expect(other.status).toBe(200);
    await other.text();

    for (const release of releases) release();
    const texts = await Promise.all(held.map((r) => r.text()));
    expect(texts).toEqual(['one two three', 'one two three']);
    await p.settled();
    const costs = p.logs.filter((l) => l.outcome === 'complete' && l.caller === 'ip:198.51.100.40');
    const spent = costs.reduce((n, l) => n + (typeof l.cost_usd === 'number' ? l.cost_usd : Number.NaN), 0);
    expect(spent).toBeGreaterThan(0);
    // Settled to the real cost: one more worst case fits what is left, two do not.
    expect(Math.round(spent * 1e6) + 2 * worst).toBeGreaterThan(30_000);
    const release = heldReply();
    const next = await ask(p, '198.51.100.40');
    expect(next.status).toBe(200);
    expect((await ask(p, '198.51.100.40')).status).toBe(429);
    release();
    await next.text();
  });
});

/**
 * Sends `streamed` tokens of a longer reply, then the fake waits: the client reads them and leaves, which stops the
 * upstream before its usage chunk. Returns the reply's release, to let the fake finish its side afterwards.
 */
async function cutByClient(p: Proxy, ip: string, streamed: number): Promise<() => void> {
  let release = () => {};
  const until = new Promise<void>((resolve) => {
    release = resolve;
  });
  h.fake.script({ kind: 'pause', afterTokens: streamed, until, text: 'one two three four five six' });
  const res = await ask(p, ip);
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('two')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  expect(text).toBe('one two ');
  await reader.cancel();
  return release;
}

describe.each(BACKENDS)('spend of a stream the client cuts short (%s)', (backend) => {
  // No usage chunk arrives: the charge is the prompt at the bound the reservation used, plus the deltas streamed.
  const streamed = 2;
  const probe = testConfig({ ...PRICED });
  const tokensUsed = promptTokenBound(userSays('Hi'), probe.operatorTokens) + streamed;
  const micros = tokensUsed * 100; // 100 micro-dollars a token, in and out
  const worst = worstCaseMicros(probe);
  const worstTokens = worst / 100;

  it.each([
    ['fits exactly', 0, 200],
    ['is one micro-dollar short', -1, 429],
  ])('settles both budgets to the prompt bound and the deltas: a budget that %s', async (_, off, status) => {
    const budget = micros + worst + off;
    const config = testConfig(env(backend, `cut${off}`, { SPEND_BUDGET_USD: String(budget / 1e6) }));
    expect(config.rateLimit.spend.budgetMicros).toBe(budget);
    const p = proxy(config);
    const release = await cutByClient(p, '198.51.100.70', streamed);
    await eventually(() => p.logs.length === 1);
    await p.settled();
    release();
    expect(p.logs[0]?.cost_usd).toBe(micros / 1e6);

    h.fake.script({ kind: 'reply', text: 'Next.' });
    const next = await ask(p, '198.51.100.70');
    expect(next.status).toBe(status);
    if (status === 429) {
      const body = (await next.json()) as { error: { code: string } };
      expect(body.error.code).toBe('spend_budget_exceeded');
      return;
    }
    // The token budget settled to the same usage: what is left is the budget less the cut reply and this booking.
    const left = config.rateLimit.tokenBudget - tokensUsed - worstTokens;
    expect(next.headers.get('ratelimit')).toContain(`"tokens";r=${left};`);
    await next.text();
  });
});

describe.each(BACKENDS)('global daily spend cap (%s)', (backend) => {
  it('answers 503 with a friendly message past the cap, logs it at error, and settles reservations back', async () => {
    const config = testConfig(env(backend, 'global', { GLOBAL_SPEND_BUDGET_USD: '0.02' }));
    const worst = worstCaseMicros(config);
    expect(2 * worst).toBeGreaterThan(20_000);
    const p = proxy(config);
    const release = heldReply();
    const first = await ask(p, '198.51.100.50');
    expect(first.status).toBe(200);

    const refused = await ask(p, '198.51.100.51'); // anyone: the cap is the deployment's
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe(TO_MIDNIGHT_S);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('spend_cap_reached');
    expect(body.error.message).toMatch(/service has reached its spending limit for today/);
    expect(body.error.message).not.toMatch(/GLOBAL_SPEND|\$/); // the operator's details stay in the log
    const line = p.logs.find((l) => l.error_code === 'spend_cap_reached');
    expect(line).toMatchObject({ level: 'error', status: 503, outcome: 'rejected' });
    expect(line?.error_detail).toContain('GLOBAL_SPEND_BUDGET_USD reached');

    release();
    await first.text();
    await p.settled();
    const second = await ask(p, '198.51.100.51'); // the first reply settled to far less than its reservation
    expect(second.status).toBe(200);
    await second.text();
    await p.settled();
    expect(p.logs.filter((l) => l.outcome === 'complete')).toHaveLength(2);
  });
});

/** The ledger itself, on each store: the spend budgets must be as atomic as the token budget they share a script with. */
describe.each(BACKENDS)('spend ledger (%s)', (backend) => {
  const limits = {
    requests: 1_000,
    windowMs: 60_000,
    tokenBudget: 1_000_000,
    budgetWindowMs: 60_000,
    streamLeaseMs: 10_000,
    spend: { budgetMicros: 1_000, windowMs: 60_000, globalDailyMicros: 1_500 },
  };
  const make = (): LimitStores => {
    const now = () => NOON;
    if (backend === 'memory') return memoryLimitStores(limits, now);
    const prefix = uniquePrefix(`ledger-${backend}`);
    const redis =
      backend === 'tcp'
        ? tcp.redis
        : upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 1_000 });
    return redisLimitStores(redis, { ...limits, kind: backend, prefix }, now);
  };
  const amount = (micros: number) => ({ tokens: 1, micros });

  it('never overshoots a caller’s budget or the daily cap under concurrent bookings', async () => {
    const { ledger } = make();
    const mine = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ledger.book('user:a', amount(300), `a${i}`, 99)),
    );
    expect(mine.filter((b) => b.booked)).toHaveLength(3); // 900 of 1,000
    const refused = mine.find((b) => !b.booked);
    expect(refused).toMatchObject({ spend: { granted: false, remaining: 100 }, stream: { granted: false } });
    const theirs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ledger.book('user:b', amount(300), `b${i}`, 99)),
    );
    expect(theirs.filter((b) => b.booked)).toHaveLength(2); // 900 + 600 of the day's 1,500
    expect(theirs.find((b) => !b.booked)?.globalSpend).toMatchObject({ granted: false, remaining: 0 });
  });

  it('settles both to the real cost, and books nothing it refuses', async () => {
    const { ledger } = make();
    const first = await ledger.book('user:c', amount(800), 'c1', 99);
    expect(first).toMatchObject({ booked: true, spend: { remaining: 200 }, globalSpend: { remaining: 700 } });
    expect((await ledger.book('user:c', amount(300), 'c2', 99)).booked).toBe(false);
    await ledger.finish('user:c', first.windows, { tokens: 0, micros: -700 }, 'c1'); // it really cost 100
    const second = await ledger.book('user:c', amount(900), 'c3', 99);
    expect(second).toMatchObject({ booked: true, spend: { remaining: 0 }, globalSpend: { remaining: 500 } });
  });
});

describe('spend limits when the shared store is down', () => {
  it('carry on per instance with RATE_LIMIT_FAIL=local: the local count still refuses', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      ...PRICED,
      SPEND_BUDGET_USD: '0.02',
      REDIS_URL: 'redis://127.0.0.1:1', // nothing listens there
      REDIS_TIMEOUT_MS: '50',
      RATE_LIMIT_FAIL: 'local',
    });
    const p = proxy(config);
    const release = heldReply();
    const first = await ask(p, '198.51.100.60');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-fail')).toBe('local');
    const refused = await ask(p, '198.51.100.60');
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('spend_budget_exceeded');
    release();
    await first.text();
  });
});

describe('spend limits with an unpriced model', () => {
  it('refuse to start rather than let the model spend for free', () => {
    expect(() =>
      testConfig({ SPEND_BUDGET_USD: '1', MODEL_PRICES: '{"test-model": {"input": 1, "output": 1}}' }),
    ).toThrow(/MODEL_PRICES has no price for "test-model-large"/);
  });
});
