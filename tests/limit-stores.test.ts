import { createHash, randomUUID } from 'node:crypto';
import { errors } from '@upstash/redis';
import IORedis from 'ioredis';
import { describe, expect, it } from 'vitest';
import { sharedAsk } from '../lib/limits/ask';
import { memoryLimitStores } from '../lib/limits/memory-store';
import { redisLimitStores } from '../lib/limits/redis-store';
import type { LimitStores } from '../lib/limits/stores';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import { LuaCompat } from '../server/lua-compat';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';
import { tcpRedisForFile, upstashBridgeForFile } from './support/redis-for-file';

const WINDOWS = {
  requests: 3,
  windowMs: 60_000,
  tokenBudget: 100,
  budgetWindowMs: 60_000,
  streamLeaseMs: 10_000,
};

const bridge = await upstashBridgeForFile();
const tcp = tcpRedisForFile(1_000);

type Make = (now?: () => number) => LimitStores;

/** A reservation of tokens alone (the spend budgets have their own tests: tests/spend.test.ts). */
const tokens = (n: number) => ({ tokens: n, micros: 0 });

/** One contract, three stores: the in-memory store must behave exactly like the Redis ones. */
const backends: [name: string, make: Make][] = [
  ['memory', (now = Date.now) => memoryLimitStores(WINDOWS, now)],
  [
    'Upstash REST',
    (now = Date.now) => {
      const rest = upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 1_000 });
      return redisLimitStores(rest, { ...WINDOWS, kind: 'upstash', prefix: uniquePrefix('rest') }, now);
    },
  ],
  [
    'REDIS_URL',
    (now = Date.now) =>
      redisLimitStores(tcp.redis, { ...WINDOWS, kind: 'redis', prefix: uniquePrefix('tcp') }, now),
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

  it('books tokens only while they fit, books nothing when refused, and settles to the real cost', async () => {
    const { ledger } = make();
    const first = await ledger.book('user:a', tokens(70), 'a1', 10);
    expect(first).toMatchObject({ booked: true, budget: { granted: true, remaining: 30, limit: 100 } });
    const refused = await ledger.book('user:a', tokens(40), 'a2', 10);
    expect(refused).toMatchObject({ booked: false, budget: { granted: false, remaining: 30 } });
    await ledger.finish('user:a', first.windows, tokens(-50), 'a1'); // it really cost 20
    expect(await ledger.book('user:a', tokens(80), 'a3', 10)).toMatchObject({
      booked: true,
      budget: { remaining: 0 },
    });
    expect((await ledger.book('user:b', tokens(100), 'b1', 10)).booked).toBe(true);
  });

  it('never lets concurrent bookings overshoot the budget', async () => {
    const { ledger } = make();
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => ledger.book('user:c', tokens(30), `c${i}`, 99)),
    );
    expect(results.filter((r) => r.booked)).toHaveLength(3);
  });

  it('counts a reservation in its window, weighted in the next, and forgets it two windows on', async () => {
    let now = 2_000_000 * 60_000; // the start of a window
    const { ledger } = make(() => now);
    const booked = await ledger.book('user:t', tokens(60), 't1', 10);
    expect(booked.budget).toMatchObject({ remaining: 40, resetAt: now + 60_000 });
    now += 60_000 + 30_000; // half-way into the next window: 60 * 1/2 = 30 still counts
    expect((await ledger.book('user:t', tokens(1), 't2', 10)).budget.remaining).toBe(69);
    now += 60_000; // two windows on: nothing counts any more
    await ledger.finish('user:t', booked.windows, tokens(1_000), 't1'); // a forgotten window takes no late settlement
    expect((await ledger.book('user:t', tokens(1), 't3', 10)).budget.remaining).toBe(99);
  });

  it('gives out at most `max` stream slots at once, across concurrent asks, books no tokens without one, and takes them back', async () => {
    const { ledger } = make();
    const asks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ledger.book('user:s', tokens(1), `lease-${i}`, 4)),
    );
    const held = asks.flatMap((a, i) => (a.booked ? [{ lease: `lease-${i}`, windows: a.windows }] : []));
    expect(held).toHaveLength(4);
    const late = await ledger.book('user:s', tokens(1), 'late', 4);
    expect(late).toMatchObject({
      booked: false,
      stream: { granted: false },
      budget: { granted: true, remaining: 96 },
    });
    const [first] = held;
    if (!first) throw new Error('no slot held');
    await ledger.finish('user:s', first.windows, tokens(-1), first.lease);
    expect((await ledger.book('user:s', tokens(1), 'late', 4)).booked).toBe(true);
    expect((await ledger.book('user:other', tokens(1), 'x', 4)).booked).toBe(true);
  });

  it('frees a slot whose holder stopped renewing once its lease runs out, and keeps a renewed one', async () => {
    let now = 5_000_000 * 60_000;
    const { ledger } = make(() => now);
    expect((await ledger.book('user:l', tokens(1), 'crashed', 2)).booked).toBe(true);
    expect((await ledger.book('user:l', tokens(1), 'alive', 2)).booked).toBe(true);
    expect((await ledger.book('user:l', tokens(1), 'third', 2)).booked).toBe(false);
    now += 6_000;
    await ledger.renew('user:l', 'alive');
    now += 6_000; // 'crashed' is 12 s old (lease 10 s); 'alive' was renewed 6 s ago
    expect((await ledger.book('user:l', tokens(1), 'third', 2)).booked).toBe(true);
    expect((await ledger.book('user:l', tokens(1), 'fourth', 2)).booked).toBe(false);
  });

  it('frees a later slot that lapsed while an earlier one, renewed, is still held', async () => {
    let now = 5_000_000 * 60_000;
    const { ledger } = make(() => now);
    expect((await ledger.book('user:r', tokens(1), 'first', 2)).booked).toBe(true);
    now += 1_000;
    expect((await ledger.book('user:r', tokens(1), 'second', 2)).booked).toBe(true);
    now += 5_000;
    await ledger.renew('user:r', 'first'); // now expires after 'second', though taken before it
    now += 6_000; // 'second' is 11 s old (lease 10 s); 'first' was renewed 6 s ago
    expect((await ledger.book('user:r', tokens(1), 'third', 2)).booked).toBe(true);
    expect((await ledger.book('user:r', tokens(1), 'fourth', 2)).booked).toBe(false);
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

  it('is an estimate: any window-long stretch admits at most twice the limit, and can admit more than it', async () => {
    // The README states this bound. Worst case: a full window's worth right at its end, then a steady stream.
    const limit = 10;
    const windowMs = 10_000;
    let now = 7_000_000 * windowMs;
    const stores = memoryLimitStores({ ...WINDOWS, requests: limit, windowMs }, () => now);
    const admitted: number[] = [];
    const offer = async () => {
      if ((await stores.requests.take('burst')).allowed) admitted.push(now);
    };
    now += windowMs - 1; // the last millisecond of a window
    for (let i = 0; i < limit * 3; i++) await offer();
    for (let step = 0; step < 300; step++) {
      now += 100;
      await offer();
    }
    let worst = 0;
    for (const start of admitted)
      worst = Math.max(worst, admitted.filter((t) => t >= start && t < start + windowMs).length);
    expect(worst).toBeGreaterThan(limit);
    expect(worst).toBeLessThanOrEqual(2 * limit);
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

  it('runs scripts straight on the TCP connection, answering as the REST client would', async () => {
    const connection = tcpRedis(REDIS_TEST_URL, 2_000);
    const fresh = `-- ${randomUUID()}\n`; // never loaded yet: the first EVALSHA gets NOSCRIPT
    try {
      const script = connection.redis.createScript<number[]>(`${fresh}return {tonumber(ARGV[1]) + 1, #KEYS}`);
      expect(await script.exec(['a', 'b'], ['41'])).toEqual([42, 2]); // EVALSHA refused, then EVAL
      expect(await script.exec(['a'], ['1'])).toEqual([2, 1]); // EVALSHA
      // The limiter's scripts carry a flag Redis 7.0 rejects: run without it, and still known by their own SHA.
      const flagged = `#!lua flags=allow-key-locking\n${fresh}return 7`;
      const sha = createHash('sha1').update(flagged).digest('hex');
      await expect(connection.redis.evalsha(sha, [], [])).rejects.toThrow(/NOSCRIPT/);
      expect(await connection.redis.eval(flagged, [], [])).toBe(7);
      expect(await connection.redis.evalsha(sha, [], [])).toBe(7);
      // Arguments as the REST client sends them; an error reply as it throws one.
      expect(await connection.raw.eval(`${fresh}return ARGV`, [], ['x', 2, true, null])).toEqual([
        'x',
        '2',
        'true',
        'null',
      ]);
      const failing = connection.raw.eval(`${fresh}return redis.error_reply('no such thing')`, [], []);
      await expect(failing).rejects.toThrow(errors.UpstashError);
      await expect(failing).rejects.toThrow('no such thing');
    } finally {
      await connection.close();
    }
  });
});

describe('asking a shared store both questions at once (lib/limits/ask.ts)', () => {
  /** A store whose answers the test gives, one question at a time, and which records what it was asked. */
  function heldStore() {
    const asked: string[] = [];
    const answers: { take: (allowed: boolean | Error) => void; book: (booked: boolean) => void }[] = [];
    const windows = { tokens: 1, spend: 1, day: 1 };
    const state = { limit: 2, remaining: 0, resetAt: 60_000 };
    const stores: LimitStores = {
      kind: 'redis',
      requests: {
        take: (callerId) =>
          new Promise((resolve, reject) => {
            asked.push(`take ${callerId}`);
            const take = (allowed: boolean | Error) =>
              allowed instanceof Error ? reject(allowed) : resolve({ ...state, allowed });
            answers.push({ take, book: () => {} });
          }),
      },
      ledger: {
        book: (callerId) =>
          new Promise((resolve) => {
            asked.push(`book ${callerId}`);
            const granted = { ...state, granted: true, window: 1 };
            const last = answers.at(-1);
            if (last)
              last.book = (booked) =>
                resolve({ budget: granted, stream: { granted: booked }, windows, booked });
          }),
        renew: async () => {},
        finish: async (callerId, _windows, delta) => {
          asked.push(`finish ${callerId} ${delta.tokens}`);
        },
      },
    };
    return { stores, asked, answer: (i: number) => answers[i] };
  }

  it('sends the booking with the count, before the count has answered', async () => {
    const held = heldStore();
    const ask = sharedAsk({ maxStreams: 3, answered: (v) => v, now: () => 0, background: () => {} });
    const verdict = ask(held.stores, 'ip:a', tokens(10), 'lease-1');
    expect(held.asked).toEqual(['take ip:a', 'book ip:a']);
    held.answer(0)?.take(true);
    held.answer(0)?.book(true);
    expect((await verdict).booking?.booked).toBe(true);
  });

  it('answers a refusal at once, gives back what it booked, then asks that caller one question at a time until the reset', async () => {
    const held = heldStore();
    let now = 0;
    const background: Promise<unknown>[] = [];
    const ask = sharedAsk({
      maxStreams: 3,
      answered: (v) => v,
      now: () => now,
      background: (p) => background.push(p),
    });
    const refused = ask(held.stores, 'ip:a', tokens(10), 'lease-1');
    held.answer(0)?.take(false);
    expect((await refused).booking).toBeUndefined(); // answered without waiting for the booking
    held.answer(0)?.book(true);
    await Promise.all(background);
    expect(held.asked).toEqual(['take ip:a', 'book ip:a', 'finish ip:a -10']);
    const again = ask(held.stores, 'ip:a', tokens(10), 'lease-2');
    await Promise.resolve();
    expect(held.asked.slice(3)).toEqual(['take ip:a']); // no booking while the count says no
    held.answer(1)?.take(false);
    expect((await again).requests.allowed).toBe(false);
    const other = ask(held.stores, 'ip:b', tokens(10), 'lease-3'); // another caller is asked both at once
    expect(held.asked.slice(4)).toEqual(['take ip:b', 'book ip:b']);
    held.answer(2)?.take(true);
    held.answer(2)?.book(true);
    await other;
    now = 60_000; // the window has reset: both at once again
    void ask(held.stores, 'ip:a', tokens(10), 'lease-4');
    expect(held.asked.slice(6)).toEqual(['take ip:a', 'book ip:a']);
  });

  it('gives back the booking when the count fails, and fails like the count', async () => {
    const held = heldStore();
    const background: Promise<unknown>[] = [];
    const ask = sharedAsk({
      maxStreams: 3,
      answered: (v) => v,
      now: () => 0,
      background: (p) => background.push(p),
    });
    const verdict = ask(held.stores, 'ip:a', tokens(10), 'lease-1');
    held.answer(0)?.book(true);
    held.answer(0)?.take(new Error('connection reset'));
    await expect(verdict).rejects.toThrow('connection reset');
    await Promise.all(background);
    expect(held.asked).toEqual(['take ip:a', 'book ip:a', 'finish ip:a -10']);
  });
});
