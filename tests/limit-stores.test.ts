import IORedis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLimitStores } from '../lib/limits/memory-store';
import { redisLimitStores } from '../lib/limits/redis-store';
import type { LimitStores } from '../lib/limits/stores';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import { LuaCompat } from '../server/lua-compat';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';
import { startUpstashBridge, type UpstashBridge } from './support/upstash-bridge';

const WINDOWS = { requests: 3, windowMs: 60_000, tokenBudget: 100, budgetWindowMs: 60_000 };

let bridge: UpstashBridge;
let tcp: ReturnType<typeof tcpRedis>;
beforeAll(async () => {
  bridge = await startUpstashBridge();
  tcp = tcpRedis(REDIS_TEST_URL, 1_000);
});
afterAll(async () => {
  await bridge.close();
  await tcp.close();
});

/** One contract, three stores: the in-memory store must behave exactly like the Redis ones. */
const backends: [name: string, make: () => LimitStores][] = [
  ['memory', () => memoryLimitStores(WINDOWS, Date.now)],
  [
    'Upstash REST',
    () =>
      redisLimitStores(
        upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 1_000 }),
        {
          ...WINDOWS,
          kind: 'upstash',
          prefix: uniquePrefix('rest'),
        },
        Date.now,
      ),
  ],
  [
    'REDIS_URL',
    () => redisLimitStores(tcp.redis, { ...WINDOWS, kind: 'redis', prefix: uniquePrefix('tcp') }, Date.now),
  ],
];

describe.each(backends)('%s store', (_name, make) => {
  it('allows exactly the limit, counts down, and does not count refusals', async () => {
    const stores = make();
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await stores.requests.take('ip:1.2.3.4'));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false, false]);
    expect(results.map((r) => r.remaining)).toEqual([2, 1, 0, 0, 0]);
    expect(results[0]?.limit).toBe(3);
    expect(results[0]?.resetAt).toBe((Math.floor(Date.now() / 60_000) + 1) * 60_000);
  });

  it('keeps callers apart', async () => {
    const stores = make();
    for (let i = 0; i < 3; i++) await stores.requests.take('ip:1.1.1.1');
    expect((await stores.requests.take('ip:1.1.1.1')).allowed).toBe(false);
    expect((await stores.requests.take('ip:2.2.2.2')).allowed).toBe(true);
  });

  it('charges a token budget, even past its end, and reports what is left', async () => {
    const stores = make();
    expect((await stores.budget.peek('user:a')).remaining).toBe(100);
    await stores.budget.charge('user:a', 70);
    expect((await stores.budget.peek('user:a')).remaining).toBe(30);
    await stores.budget.charge('user:a', 45);
    expect(await stores.budget.peek('user:a')).toMatchObject({ remaining: 0, limit: 100 });
    expect((await stores.budget.peek('user:b')).remaining).toBe(100);
  });
});

describe('memory store over time (injected clock)', () => {
  it('slides: the previous window counts, weighted, then is forgotten', async () => {
    let now = 1_000_000 * 60_000; // the start of a window
    const stores = memoryLimitStores(WINDOWS, () => now);
    for (let i = 0; i < 3; i++) expect((await stores.requests.take('c')).allowed).toBe(true);
    expect((await stores.requests.take('c')).allowed).toBe(false);
    now += 60_000 + 10_000; // next window, 1/6 in: 3 * 5/6 = 2.5 → 2 still count
    expect((await stores.requests.take('c')).allowed).toBe(true);
    expect((await stores.requests.take('c')).allowed).toBe(false);
    now += 60_000; // two windows on: nothing counts any more
    expect((await stores.requests.take('c')).remaining).toBe(2);
  });
});

describe('Redis budget over time (injected clock)', () => {
  it('counts a charge in its window, weighted in the next, and forgets it two windows on', async () => {
    let now = 2_000_000 * 60_000; // the start of a window
    const stores = redisLimitStores(
      tcp.redis,
      { ...WINDOWS, kind: 'redis', prefix: uniquePrefix('clock') },
      () => now,
    );
    await stores.budget.charge('user:t', 60);
    expect((await stores.budget.peek('user:t')).remaining).toBe(40);
    expect((await stores.budget.peek('user:t')).resetAt).toBe(now + 60_000);
    now += 60_000 + 30_000; // half-way into the next window: 60 * 1/2 = 30 still counts
    expect((await stores.budget.peek('user:t')).remaining).toBe(70);
    now += 60_000; // two windows on: nothing counts any more
    expect((await stores.budget.peek('user:t')).remaining).toBe(100);
  });
});

describe('Redis 7.0 compatibility of the limiter scripts', () => {
  it('rewrites the allow-key-locking shebang that open-source Redis rejects, and keeps the original SHA working', async () => {
    const redis = new IORedis(REDIS_TEST_URL);
    const script = '#!lua flags=allow-key-locking\nreturn 42';
    const lua = new LuaCompat();
    const [name, body, ...args] = lua.rewrite(['EVAL', script, 0]);
    expect(body).toBe('#!lua\nreturn 42');
    expect(await redis.call(String(name), String(body), ...args.map(String))).toBe(42);
    const sha = lua.originalSha(['SCRIPT', 'LOAD', script]);
    const [, mappedSha] = lua.rewrite(['EVALSHA', sha, 0]);
    expect(mappedSha).not.toBe(sha);
    expect(await redis.call('EVALSHA', String(mappedSha), '0')).toBe(42);
    redis.disconnect();
  });
});
