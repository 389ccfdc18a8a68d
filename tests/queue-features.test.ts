import { SignJWT } from 'jose';
import { FastResponse } from 'srvx';
import { afterEach, describe, expect, it } from 'vitest';
import type { Behaviour } from '../fake-upstream';
import type { ChatHandler } from '../lib/chat-handler';
import type { RequestLog } from '../lib/log';
import { memoryCapacityStore, tokenWindow } from '../lib/queue/capacity-store';
import { createLine } from '../lib/queue/line';
import { redisCapacityStore } from '../lib/queue/redis-capacity';
import { tcpRedis } from '../server/redis-tcp';
import {
  buildHandler,
  chatRequest,
  eventually,
  startHarness,
  TEST_KEY,
  testConfig,
  userSays,
} from './support/harness';
import { REDIS_TEST_URL, type RedisBackend, redisStoreEnv, uniquePrefix } from './support/redis';
import { upstashBridgeForFile } from './support/redis-for-file';

/**
 * Heavy traffic (issue 13), the rest of it: priorities, the place in line told to the client, tokens per minute,
 * pauses shared by every instance, and `QUEUE_PREFER=fallback`.
 */
const h = await startHarness();
const bridge = await upstashBridgeForFile();
afterEach(() => {
  h.fake.reset();
});

const run = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const ONE_ATTEMPT = { UPSTREAM_MAX_ATTEMPTS: '1' };
/** Holds its slot for about a second: 20 tokens, 50 ms apart. */
const slow: Behaviour = { kind: 'paced', tokenDelayMs: 50 };

function ask(
  handler: ChatHandler,
  text: string,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  const init = { headers: { 'x-real-ip': '203.0.113.50', ...headers }, ...(signal && { signal }) };
  return handler(chatRequest(userSays(`${text} (${run})`), init));
}

const plain = { accept: 'text/plain' };
const asked = (call: { body: { messages?: { content?: unknown }[] } }) =>
  String(call.body.messages?.at(-1)?.content ?? '').split(' (')[0];

/** The UI stream's chunks, in order (the SSE `data:` lines, `[DONE]` left out). */
async function chunksOf(res: Response): Promise<{ type: string; [key: string]: unknown }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((event) => event.startsWith('data: ') && event !== 'data: [DONE]')
    .map((event) => JSON.parse(event.slice(6)));
}

describe('the line', () => {
  const waiter = (callerId: string, priority = 0) => ({ callerId, priority, tokens: 0 });

  it('serves the highest priority first, then takes callers in turn; positions follow that order', () => {
    const line = createLine();
    const [a1, a2, a3, b1] = [waiter('a'), waiter('a'), waiter('a'), waiter('b')];
    for (const w of [a1, a2, a3, b1]) line.add(w);
    const order = () => [...line.positions()].map(([w, position]) => [w, position]);
    expect(order()).toEqual([
      [a1, 1],
      [b1, 2],
      [a2, 3],
      [a3, 4],
    ]);
    const vip = waiter('c', 5);
    line.add(vip);
    expect(line.next()).toBe(vip);
    expect(order()[0]).toEqual([vip, 1]);
    line.served(vip);
    expect(line.next()).toBe(a1);
    line.served(a1); // a goes to the back of the turns
    expect(line.next()).toBe(b1);
    line.served(b1);
    expect(line.next()).toBe(a2);
    expect(line.remove(a2)).toBe(true);
    expect(line.remove(a2)).toBe(false);
    expect(line.next()).toBe(a3);
    expect(line.size).toBe(1);
  });
});

describe('tokens per minute (UPSTREAM_TPM)', () => {
  it('books each request’s worst case in a sliding minute and settles it to what was used', async () => {
    let now = 10 * 60_000; // the start of a minute
    const store = memoryCapacityStore(() => now);
    const limits = { maxConcurrent: undefined, rpm: undefined, tpm: 1_000 };
    const first = await store.tryAcquire('p', 'a', limits, 5_000, 600);
    expect(first).toEqual({ granted: true, window: 10 });
    expect(await store.tryAcquire('p', 'b', limits, 5_000, 500)).toEqual({
      granted: false,
      retryInMs: 60_000,
    });
    // `a` used 100 of its 600: the rest goes back, and `b` fits.
    await store.release('p', 'a', { window: 10, delta: -500 });
    expect((await store.tryAcquire('p', 'b', limits, 5_000, 500)).granted).toBe(true);
    // Half a minute into the next one, half of the 600 booked before still counts: 300 + 800 is too many...
    now += 90_000;
    expect(await store.tryAcquire('p', 'c', limits, 5_000, 800)).toEqual({
      granted: false,
      retryInMs: 10_000,
    });
    // ...until enough of it has faded: 100 of its 600 tokens, at 600 a minute, 10 s later.
    now += 10_000;
    expect((await store.tryAcquire('p', 'c', limits, 5_000, 800)).granted).toBe(true);
  });

  it('computes the sliding window the way the Redis script does', () => {
    expect(tokenWindow(0, 0, 0, 1_000, 1_000)).toEqual({ fits: true, retryInMs: 0 });
    expect(tokenWindow(0, 1, 0, 1_000, 1_000)).toEqual({ fits: false, retryInMs: 60_000 });
    expect(tokenWindow(600, 0, 30_000, 800, 1_000)).toEqual({ fits: false, retryInMs: 10_000 });
  });

  describe.each<RedisBackend>(['tcp', 'rest'])('across 2 instances on Redis (%s)', (backend) => {
    it('a third request waits until the first two settle their bookings, then goes (not a minute later)', async () => {
      h.fake.script(slow, slow, { kind: 'reply', text: 'third' });
      // Each request books about 460 tokens (its prompt + MAX_OUTPUT_TOKENS 400): two fit in 1,000, three do not.
      const env = {
        OPENAI_BASE_URL: h.fake.url,
        UPSTREAM_TPM: '1000',
        MAX_OUTPUT_TOKENS: '400',
        COALESCE: 'off',
      };
      const config = testConfig({ ...env, ...redisStoreEnv(backend, 'queue-tpm', bridge) });
      const [one, two] = [buildHandler(config), buildHandler(config)];
      const read = async (res: Promise<Response>) => {
        const answer = await res;
        return { status: answer.status, text: await answer.text() };
      };
      const held = [read(ask(one, 'first', plain)), read(ask(two, 'second', plain))];
      await eventually(() => h.fake.calls.length === 2, 5_000);
      const third = read(ask(two, 'third', plain));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(h.fake.calls).toHaveLength(2); // it waits: the minute is fully booked
      const answers = await Promise.all([...held, third]);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(answers[2]?.text).toBe('third');
      expect(h.fake.calls.map(asked).sort()).toEqual(['first', 'second', 'third']);
      expect(h.fake.calls.map(asked).at(-1)).toBe('third');
    });
  });
});

describe.each<RedisBackend>(['tcp', 'rest'])('pauses learnt by one instance (%s)', (backend) => {
  it('hold every instance: the other one waits out the reset and meets no 429', async () => {
    const prefix = uniquePrefix('queue-pause');
    const env = { OPENAI_BASE_URL: h.fake.url, ...ONE_ATTEMPT, COALESCE: 'off' };
    const config = testConfig({
      ...env,
      ...redisStoreEnv(backend, 'unused', bridge),
      RATE_LIMIT_PREFIX: prefix,
    });
    const [learns, other] = [buildHandler(config), buildHandler(config)];
    h.fake.setCapacity({
      rateLimitHeaders: { remainingRequests: 0, resetRequestsMs: 2_000, limitRequests: 1 },
    });
    const started = performance.now();
    const first = await ask(learns, 'spends the last request', plain);
    expect(first.status).toBe(200);
    await first.text();
    // The pause is in Redis for every instance (over TCP it was also published).
    const connection = tcpRedis(REDIS_TEST_URL, 2_000);
    try {
      const store = redisCapacityStore(connection.redis, { prefix });
      await eventually(async () => (await store.readPause?.('main', 'test-model')) !== 0);
    } finally {
      await connection.close();
    }
    const answers = await Promise.all(
      [1, 2].map(async (i) => {
        const res = await ask(other, `waits on the other instance ${i}`, plain);
        return res.status;
      }),
    );
    expect(answers).toEqual([200, 200]);
    expect(h.fake.rejected).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_900);
  });
});

describe('the place in line, told to a UI client that asks for it (x-chat-queue-updates: on)', () => {
  const updates = { 'x-chat-queue-updates': 'on' };

  describe.each([
    ['the reply log on (the default)', {}],
    ['the reply log off', { COALESCE: 'off' }],
  ])('%s', (_, extra) => {
    it('starts the stream with data-queue parts while it waits, then the reply', async () => {
      h.fake.script(slow, { kind: 'reply', text: 'your turn' });
      const logs: RequestLog[] = [];
      const env = { OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1', ...extra };
      const handler = buildHandler(testConfig(env), { logs });
      const holder = (await ask(handler, 'holds the slot', plain)).text(); // read: a stream nobody reads stalls
      const waiting = await ask(handler, 'waits its turn', updates);
      // The status came before the slot: the holder is still streaming.
      expect(waiting.status).toBe(200);
      // In the platform's class for streamed replies, as every other reply (srvx's on Node: `instanceof` would
      // answer true for any Response, so the constructor tells).
      expect(waiting.constructor).toBe(FastResponse);
      expect(h.fake.calls).toHaveLength(1);
      const chunks = await chunksOf(waiting);
      const queued = chunks.filter((c) => c.type === 'data-queue');
      expect(queued[0]).toMatchObject({ data: { position: 1 }, transient: true });
      expect(chunks.findIndex((c) => c.type === 'data-queue')).toBeLessThan(
        chunks.findIndex((c) => c.type === 'start'),
      );
      const text = chunks.filter((c) => c.type === 'text-delta').map((c) => c.delta);
      expect(text.join('')).toBe('your turn');
      expect(chunks.at(-1)?.type).toBe('finish');
      await holder;
      await eventually(() => logs.length === 2);
      expect(
        logs.find((l) => l.ttft_ms !== undefined && l.status === 200 && l.outcome === 'complete'),
      ).toBeDefined();
    });

    it('ends a queue timeout with an error part (the status was sent), and logs it as queue_timeout', async () => {
      h.fake.script({ kind: 'paced', tokenDelayMs: 100 });
      const logs: RequestLog[] = [];
      const env = {
        OPENAI_BASE_URL: h.fake.url,
        UPSTREAM_MAX_CONCURRENT: '1',
        QUEUE_MAX_WAIT_MS: '700',
        ...extra,
      };
      const handler = buildHandler(testConfig(env), { logs });
      const holder = (await ask(handler, 'holds the slot for 2 s', plain)).text();
      const waiting = await ask(handler, 'times out', updates);
      expect(waiting.status).toBe(200);
      const chunks = await chunksOf(waiting);
      expect(chunks[0]?.type).toBe('data-queue');
      expect(chunks.at(-1)).toEqual({
        type: 'error',
        errorText: 'The assistant is very busy right now. Please try again in a moment.',
      });
      await eventually(() => logs.some((l) => l.error_code === 'queue_timeout'));
      expect(logs.find((l) => l.error_code === 'queue_timeout')).toMatchObject({
        status: 200,
        outcome: 'error',
      });
      await holder;
      expect(h.fake.calls).toHaveLength(1);
    });
  });

  it('estimates the wait from how long this instance’s streams held their slots', async () => {
    h.fake.script({ kind: 'paced', tokenDelayMs: 20 }, slow, { kind: 'reply', text: 'done' });
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1' }));
    const started = performance.now();
    await (await ask(handler, 'one stream, about 0.4 s', plain)).text();
    const held = performance.now() - started;
    const holder = (await ask(handler, 'holds the slot', plain)).text();
    const chunks = await chunksOf(await ask(handler, 'waits', updates));
    const place = chunks.find((c) => c.type === 'data-queue')?.data as { position: number; etaMs: number };
    // One slot, first in line: about one stream's hold (what the first stream took, to the nearest 100 ms).
    expect(place.position).toBe(1);
    expect(place.etaMs).toBeGreaterThan(0);
    expect(place.etaMs).toBeLessThanOrEqual(Math.ceil(held / 100) * 100 + 100);
    await holder;
  });

  it('keeps the real status for a wait too short to tell, and for a client that did not ask', async () => {
    h.fake.script({ kind: 'paced', tokenDelayMs: 5 }, { kind: 'reply', text: 'quick' });
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1' }));
    const holder = (await ask(handler, 'holds the slot for 0.1 s', plain)).text();
    const quick = await ask(handler, 'waits 0.1 s', updates);
    const chunks = await chunksOf(quick);
    expect(chunks.filter((c) => c.type === 'data-queue')).toEqual([]);
    expect(chunks.some((c) => c.type === 'text-delta')).toBe(true);
    await holder;
    const timeout = buildHandler(
      testConfig({ OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1', QUEUE_MAX_WAIT_MS: '300' }),
    );
    h.fake.script(slow);
    const held = (await ask(timeout, 'holds', plain)).text();
    const refused = await ask(timeout, 'did not ask for updates');
    expect(refused.status).toBe(503);
    await held;
  });
});

describe('priority (QUEUE_PRIORITY_CLAIM, or a static token’s tier)', () => {
  it('serves a higher-priority caller before those already waiting', async () => {
    const low = 'low-priority-token-0123456789';
    const vip = 'vip-priority-token-0123456789';
    const secret = 'a-jwt-secret-of-at-least-32-characters!';
    const handler = buildHandler(
      testConfig({
        OPENAI_BASE_URL: h.fake.url,
        UPSTREAM_MAX_CONCURRENT: '1',
        AUTH_TOKENS: `low:${low},vip=5:${vip}`,
        AUTH_JWT_SECRET: secret,
        QUEUE_PRIORITY_CLAIM: 'tier',
      }),
    );
    const jwt = await new SignJWT({ tier: 9 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('gold')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    h.fake.script(slow);
    const bearer = (token: string) => ({ ...plain, authorization: `Bearer ${token}` });
    const holder = await ask(handler, 'holder', bearer(low));
    const waiting = [1, 2, 3].map((i) => ask(handler, `low ${i}`, bearer(low)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    waiting.push(ask(handler, 'vip', bearer(vip)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    waiting.push(ask(handler, 'jwt tier 9', bearer(jwt)));
    const answers = await Promise.all([holder, ...waiting]);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    await Promise.all(answers.map((r) => r.text()));
    const order = h.fake.calls.map(asked);
    expect(order.slice(0, 3)).toEqual(['holder', 'jwt tier 9', 'vip']);
    expect(order.slice(3).sort()).toEqual(['low 1', 'low 2', 'low 3']); // one caller's: in the order they arrived
  });

  it('reads the tier from AUTH_TOKENS, and refuses a bad one', () => {
    const token = 'x'.repeat(20);
    expect(testConfig({ AUTH_TOKENS: `a=7:${token}` }).security.authTokens.get(token)).toEqual({
      caller: 'a',
      priority: 7,
    });
    expect(() => testConfig({ AUTH_TOKENS: `a=101:${token}` })).toThrow(/AUTH_TOKENS/);
    expect(() => testConfig({ AUTH_TOKENS: `a=high:${token}` })).toThrow(/AUTH_TOKENS/);
    expect(() => testConfig({ QUEUE_PRIORITY_CLAIM: 'no spaces' })).toThrow(/QUEUE_PRIORITY_CLAIM/);
    expect(() => testConfig({ QUEUE_PREFER: 'never' })).toThrow(/QUEUE_PREFER/);
    expect(() => testConfig({ UPSTREAM_TPM: '0' })).toThrow(/UPSTREAM_TPM/);
  });
});

describe('QUEUE_PREFER', () => {
  const providers = (prefer: string) =>
    testConfig({
      OPENAI_BASE_URL: h.fake.url,
      UPSTREAM_MAX_CONCURRENT: '1',
      FALLBACK_MODELS: 'test-model-large@backup',
      UPSTREAM_BACKUP_BASE_URL: h.fake.url,
      UPSTREAM_BACKUP_API_KEY: TEST_KEY,
      QUEUE_PREFER: prefer,
    });

  it('fallback: a saturated provider sends the request to the fallback at once', async () => {
    h.fake.script(slow, { kind: 'reply', text: 'from the backup' });
    const handler = buildHandler(providers('fallback'));
    const holder = await ask(handler, 'holds main', plain);
    const res = await ask(handler, 'falls back', plain);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-chat-fallback')).toBe('model');
    expect(await res.text()).toBe('from the backup');
    expect(h.fake.calls.map((c) => c.body.model)).toEqual(['test-model', 'test-model-large']);
    await holder.text();
  });

  it('wait (the default): it waits for the main provider', async () => {
    h.fake.script({ kind: 'paced', tokenDelayMs: 10 }, { kind: 'reply', text: 'from main' });
    const handler = buildHandler(providers('wait'));
    const holder = await ask(handler, 'holds main', plain);
    const res = await ask(handler, 'waits', plain);
    expect(res.headers.get('x-chat-fallback')).toBeNull();
    expect(await res.text()).toBe('from main');
    expect(h.fake.calls.map((c) => c.body.model)).toEqual(['test-model', 'test-model']);
    await holder.text();
  });
});

describe('the wait, bounded', () => {
  it('is QUEUE_MAX_WAIT_MS in all, a learnt pause and the line together; the pause counts toward QUEUE_MAX_LENGTH', async () => {
    // The holder's answer says "no request left for 2 s" (one a window) and it keeps the only slot for 2 s too.
    h.fake.setCapacity({
      rateLimitHeaders: { remainingRequests: 0, resetRequestsMs: 2_000, limitRequests: 1 },
    });
    h.fake.script({ kind: 'paced', tokenDelayMs: 100 });
    const env = { OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1', QUEUE_MAX_WAIT_MS: '2500' };
    const handler = buildHandler(testConfig({ ...env, QUEUE_MAX_LENGTH: '1', ...ONE_ATTEMPT }));
    const holder = (await ask(handler, 'holds the slot and learns the pause', plain)).text();
    const started = performance.now();
    const [waits, full] = await Promise.all([
      ask(handler, 'sleeps the pause, then waits in line', plain),
      new Promise((resolve) => setTimeout(resolve, 100)).then(() =>
        ask(handler, 'finds the line full', plain),
      ),
    ]);
    const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
    expect([full.status, await code(full)]).toEqual([503, 'queue_full']); // at once: the sleeper is waiting too
    expect([waits.status, await code(waits)]).toEqual([503, 'queue_timeout']);
    // 2 s of pause + 2.5 s of line would be 4.5 s; the budget is 2.5 s in all.
    expect(performance.now() - started).toBeLessThan(4_000);
    await holder;
    expect(h.fake.calls).toHaveLength(1);
  });
});
