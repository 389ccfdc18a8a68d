import { afterEach, describe, expect, it } from 'vitest';
import type { Behaviour } from '../fake-upstream';
import type { ChatHandler } from '../lib/chat-handler';
import { memoryCapacityStore } from '../lib/queue/capacity-store';
import { pauseFrom } from '../lib/queue/rate-limit-headers';
import { redisCapacityStore } from '../lib/queue/redis-capacity';
import { tcpRedis } from '../server/redis-tcp';
import { buildHandler, chatRequest, eventually, startHarness, testConfig, userSays } from './support/harness';
import { REDIS_TEST_URL, type RedisBackend, redisStoreEnv, uniquePrefix } from './support/redis';
import { upstashBridgeForFile } from './support/redis-for-file';

/**
 * Heavy traffic (issue 13): requests wait in a fair line for the upstream's capacity instead of meeting its 429s.
 * The fake upstream enforces a capacity of its own and counts what it refused and its peak of open streams.
 */
const h = await startHarness();
const bridge = await upstashBridgeForFile();
afterEach(() => {
  h.fake.reset();
});

/** A reply whose tokens come a few ms apart, so that streams overlap. */
const paced: Behaviour = { kind: 'paced', tokenDelayMs: 3 };
const run = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** A distinct prompt each time (identical ones would share one upstream call), from caller `ip`. */
function ask(handler: ChatHandler, ip: string, text: string, signal?: AbortSignal): Promise<Response> {
  const init = { headers: { 'x-real-ip': ip, accept: 'text/plain' }, ...(signal && { signal }) };
  return handler(chatRequest(userSays(`${text} (${run})`), init));
}

const ONE_ATTEMPT = { UPSTREAM_MAX_ATTEMPTS: '1' }; // a 429 would show, not be retried away
const ONE_STREAM = { maxConcurrent: 1, rpm: undefined, tpm: undefined };

describe.each<RedisBackend>(['tcp', 'rest'])('capacity shared by 2 instances on Redis (%s)', (backend) => {
  it('UPSTREAM_MAX_CONCURRENT=10: 100 concurrent requests all complete, 0 upstream 429s, never 11 streams open', async () => {
    h.fake.setCapacity({ maxConcurrent: 10 });
    h.fake.script(...Array.from({ length: 100 }, () => paced));
    const env = { OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '10', ...ONE_ATTEMPT };
    const config = testConfig({ ...env, ...redisStoreEnv(backend, 'queue-100', bridge) });
    const instances = [buildHandler(config), buildHandler(config)];
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await ask(instances[i % 2] as ChatHandler, `198.51.100.${i % 20}`, `Question ${i}`);
        return { status: res.status, text: await res.text() };
      }),
    );
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(h.fake.rejected).toBe(0);
    expect(h.fake.calls).toHaveLength(100);
    expect(h.fake.peakInFlight).toBeLessThanOrEqual(10);
    expect(h.fake.peakInFlight).toBeGreaterThan(1); // they did overlap: the limit, not the test, kept it at 10
  });

  it('a crashed instance frees its capacity within the lease', async () => {
    const connection = tcpRedis(REDIS_TEST_URL, 2_000);
    try {
      const prefix = uniquePrefix('queue-crash');
      const dead = redisCapacityStore(connection.redis, { prefix });
      // The crashed instance took the only slot and then never renewed it or gave it back.
      expect((await dead.tryAcquire('main', 'dead-lease', ONE_STREAM, 500, 0)).granted).toBe(true);
      const alive = redisCapacityStore(connection.redis, { prefix });
      const refused = await alive.tryAcquire('main', 'next', ONE_STREAM, 500, 0);
      expect(refused.granted).toBe(false);
      await eventually(
        async () => (await alive.tryAcquire('main', 'next', ONE_STREAM, 500, 0)).granted,
        5_000,
      );
    } finally {
      await connection.close();
    }
  });
});

describe('the line on one instance', () => {
  it('is fair: caller A sends 50, caller B then 5, and B’s 5 are served before A’s last 40', async () => {
    h.fake.script(...Array.from({ length: 55 }, () => paced));
    const handler = buildHandler(
      testConfig({
        OPENAI_BASE_URL: h.fake.url,
        UPSTREAM_MAX_CONCURRENT: '1',
        QUEUE_MAX_WAIT_MS: '15000',
        START_DEADLINE_MS: '20000',
      }),
    );
    const a = Array.from({ length: 50 }, (_, i) =>
      ask(handler, '203.0.113.1', `A${i}`).then((r) => r.text()),
    );
    await eventually(() => h.fake.calls.length >= 1);
    const b = Array.from({ length: 5 }, (_, i) => ask(handler, '203.0.113.2', `B${i}`).then((r) => r.text()));
    await Promise.all([...a, ...b]);
    const order = h.fake.calls.map((call) => String(call.body.messages?.at(-1)?.content ?? '').slice(0, 1));
    const lastB = order.lastIndexOf('B');
    // The bound: one slot at a time, round-robin between the two callers, so B's 5 go within the next 10 grants
    // after they arrive; A had at most a few served before that.
    expect(order.slice(0, lastB + 1).filter((c) => c === 'A').length).toBeLessThanOrEqual(10);
    expect(order.filter((c) => c === 'B')).toHaveLength(5);
  });

  it('answers 503 queue_full at once past QUEUE_MAX_LENGTH, and 503 queue_timeout after QUEUE_MAX_WAIT_MS', async () => {
    h.fake.script({ kind: 'paced', tokenDelayMs: 50 });
    const handler = buildHandler(
      testConfig({
        OPENAI_BASE_URL: h.fake.url,
        UPSTREAM_MAX_CONCURRENT: '1',
        QUEUE_MAX_LENGTH: '1',
        QUEUE_MAX_WAIT_MS: '300',
      }),
    );
    const holder = await ask(handler, '203.0.113.5', 'holds the slot');
    expect(holder.status).toBe(200);
    // Two more while the slot is held: one takes the only place in line (and times out), the other finds it full.
    const started = performance.now();
    const [first, second] = await Promise.all([
      ask(handler, '203.0.113.6', 'waits'),
      ask(handler, '203.0.113.7', 'finds the line full'),
    ]);
    const refusals = await Promise.all(
      [first, second].map(async (res) => ({
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        code: ((await res.json()) as { error: { code: string } }).error.code,
      })),
    );
    expect(refusals.map((r) => r.code).sort()).toEqual(['queue_full', 'queue_timeout']);
    for (const refusal of refusals) expect(refusal).toMatchObject({ status: 503, retryAfter: '5' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290); // the timeout waited its QUEUE_MAX_WAIT_MS
    await holder.text();
    expect(h.fake.calls).toHaveLength(1);
  });

  it('lets a client that leaves while waiting out of the line at once: its slot is never used', async () => {
    h.fake.script({ kind: 'paced', tokenDelayMs: 50 });
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1' }));
    const holder = await ask(handler, '203.0.113.8', 'holds the slot');
    const client = new AbortController();
    const leaving = ask(handler, '203.0.113.9', 'leaves', client.signal);
    await new Promise((resolve) => setTimeout(resolve, 100)); // time enough to reach the upstream, were it not queued
    expect(h.fake.calls).toHaveLength(1);
    client.abort();
    expect((await leaving).status).toBe(499);
    await holder.text();
    const next = await ask(handler, '203.0.113.10', 'comes after');
    expect(next.status).toBe(200);
    await next.text();
    expect(h.fake.calls.map((c) => String(c.body.messages?.at(-1)?.content).split(' (')[0])).toEqual([
      'holds the slot',
      'comes after',
    ]);
  });
});

describe('the capacity store in memory', () => {
  it('holds concurrent leases and a per-minute count, and frees an expired lease', async () => {
    let now = 1_000_000;
    const store = memoryCapacityStore(() => now);
    const limits = { maxConcurrent: 2, rpm: 3, tpm: undefined };
    expect((await store.tryAcquire('p', 'a', limits, 1_000, 0)).granted).toBe(true);
    expect((await store.tryAcquire('p', 'b', limits, 1_000, 0)).granted).toBe(true);
    expect(await store.tryAcquire('p', 'c', limits, 1_000, 0)).toEqual({ granted: false, retryInMs: 1_000 });
    await store.release('p', 'a');
    expect((await store.tryAcquire('p', 'c', limits, 1_000, 0)).granted).toBe(true);
    await store.release('p', 'b');
    await store.release('p', 'c');
    // Three starts within the minute: the fourth waits for the first to age out.
    expect(await store.tryAcquire('p', 'd', limits, 1_000, 0)).toEqual({ granted: false, retryInMs: 60_000 });
    now += 60_000;
    expect((await store.tryAcquire('p', 'd', limits, 1_000, 0)).granted).toBe(true);
    now += 1_000; // d's lease lapses without a renewal
    expect((await store.tryAcquire('p', 'e', ONE_STREAM, 1_000, 0)).granted).toBe(true);
  });
});

describe('learning from the provider', () => {
  it('with no limit configured, pauses when the provider reports 0 requests left for 2 s: no request meets a 429', async () => {
    h.fake.setCapacity({
      rateLimitHeaders: { remainingRequests: 0, resetRequestsMs: 2_000, limitRequests: 1 },
    });
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, ...ONE_ATTEMPT }));
    const started = performance.now();
    const first = await ask(handler, '203.0.113.20', 'spends the last request');
    expect(first.status).toBe(200);
    await first.text();
    const next = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const res = await ask(handler, `203.0.113.2${i}`, `waits for the reset ${i}`);
        return { status: res.status, text: await res.text() };
      }),
    );
    expect(next.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(h.fake.rejected).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_900); // they waited out the reset
  });

  it('reads OpenAI’s headers: remaining at 0 until the reset, and a 429’s retry-after', () => {
    const headers = (entries: Record<string, string>) => new Headers(entries);
    expect(
      pauseFrom(
        200,
        headers({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m30s' }),
      ),
    ).toBe(90_000);
    expect(
      pauseFrom(200, headers({ 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '850ms' })),
    ).toBe(850);
    expect(
      pauseFrom(200, headers({ 'x-ratelimit-remaining-requests': '5', 'x-ratelimit-reset-requests': '2s' })),
    ).toBeUndefined();
    // OpenAI's limits refill continuously: with none left, the next request fits after one request's share of the
    // reset (60 s to full at 500 RPM: 120 ms), not after the whole of it.
    expect(
      pauseFrom(
        200,
        headers({
          'x-ratelimit-limit-requests': '500',
          'x-ratelimit-remaining-requests': '0',
          'x-ratelimit-reset-requests': '1m0s',
        }),
      ),
    ).toBe(120);
    expect(pauseFrom(429, headers({ 'retry-after': '3' }))).toBe(3_000);
    expect(pauseFrom(429, headers({ 'retry-after-ms': '1500', 'retry-after': '2' }))).toBe(1_500);
    expect(pauseFrom(200, headers({}))).toBeUndefined();
    expect(
      pauseFrom(
        200,
        headers({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': 'soon' }),
      ),
    ).toBe(undefined);
  });
});
