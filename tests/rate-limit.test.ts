import { createServer, type Server, type Socket } from 'node:net';
import IORedis from 'ioredis';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatHandler } from '../lib/chat-handler';
import type { Config } from '../lib/config';
import { worstCaseTokens } from '../lib/limits/token-bound';
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
import { monitorRedis } from './support/monitor';
import { REDIS_TEST_URL, redisStoreEnv, uniquePrefix } from './support/redis';
import { upstashBridgeForFile } from './support/redis-for-file';
import { startUpstashBridge } from './support/upstash-bridge';

const h = await startHarness();
const bridge = await upstashBridgeForFile();
const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

type Backend = 'rest' | 'tcp';

/** Settings that put the limits on the real Redis, through the REST bridge or REDIS_URL, under a fresh prefix. */
const onRedis = (backend: Backend, name: string) => redisStoreEnv(backend, name, bridge);

function fromIp(ip: string, extra: Record<string, string> = {}): Request {
  return chatRequest(userSays('Hi'), { headers: { 'x-real-ip': ip, accept: 'text/plain', ...extra } });
}

/** What the token budget reserves for `userSays('Hi')`: its prompt's upper bound plus the longest reply. */
function worstCaseOfHi(config: Config): number {
  const request = { ...userSays('Hi'), model: 'test-model', maxTokens: config.caps.maxOutputTokens };
  return worstCaseTokens(request, config.operatorTokens);
}

async function drain(res: Response): Promise<Response> {
  await res.text();
  return res;
}

describe.each<Backend>(['rest', 'tcp'])('request limit on real Redis (%s)', (backend) => {
  it('lets exactly 50 of 200 concurrent requests through two instances sharing one Redis', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '50',
      RATE_LIMIT_WINDOW: '60 s',
      COALESCE: 'off', // each admitted request is its own upstream call, as this counts them
      ...onRedis(backend, 'exact'),
    });
    // Two instances: separate handlers, separate limiter objects and caches, one Redis.
    const instances = [0, 1].map(() => buildHandler(config));
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        (instances[i % 2] as ChatHandler)(fromIp('198.51.100.7')).then(drain),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(150);
    expect(h.fake.calls).toHaveLength(50);
  });

  it('does not let one caller affect another', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      ...onRedis(backend, 'iso'),
    });
    const handler = buildHandler(config);
    for (let i = 0; i < 2; i++) expect((await drain(await handler(fromIp('198.51.100.1')))).status).toBe(200);
    expect((await drain(await handler(fromIp('198.51.100.1')))).status).toBe(429);
    expect((await drain(await handler(fromIp('198.51.100.2')))).status).toBe(200);
  });

  it('serves again once the window has passed', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_WINDOW: '300 ms',
      ...onRedis(backend, 'reset'),
    });
    const handler = buildHandler(config);
    // Start just after a window boundary, so all three land in one window (the test is about the reset, not the slide).
    await eventually(() => Date.now() % 300 < 30, 1_000);
    for (let i = 0; i < 2; i++) await drain(await handler(fromIp('198.51.100.3')));
    const refused = await drain(await handler(fromIp('198.51.100.3')));
    expect(refused.status).toBe(429);
    // Sliding window: the previous window still counts, weighted, for part of the next one.
    await eventually(async () => (await drain(await handler(fromIp('198.51.100.3')))).status === 200, 1_500);
  });
});

describe('request limit in memory (injected clock)', () => {
  it('refuses past the limit and serves again once the clock has moved two windows on', async () => {
    let now = 3_000_000 * 60_000; // the start of a window
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_WINDOW: '60 s',
    });
    const handler = buildHandler(config, { _internal: { now: () => now } });
    for (let i = 0; i < 2; i++) expect((await drain(await handler(fromIp('198.51.100.9')))).status).toBe(200);
    const refused = await drain(await handler(fromIp('198.51.100.9')));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('60');
    now += 120_000;
    expect((await drain(await handler(fromIp('198.51.100.9')))).status).toBe(200);
  });
});

describe('token budget', () => {
  it('reserves what the operator adds to every prompt: the system prompt and the declared TOOLS', async () => {
    const tools = [{ name: 'lookup', description: 'Looks a word up.', parameters: { type: 'object' } }];
    const plain = testConfig({ OPENAI_BASE_URL: h.fake.url, TOKEN_BUDGET: '100000' });
    const withTools = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      TOKEN_BUDGET: '100000',
      TOOLS: JSON.stringify(tools),
    });
    expect(withTools.operatorTokens - plain.operatorTokens).toBeGreaterThan(JSON.stringify(tools).length);
    for (const config of [plain, withTools]) {
      const res = await drain(await buildHandler(config)(fromIp('198.51.100.30')));
      expect(res.headers.get('ratelimit')).toContain(`"tokens";r=${100_000 - worstCaseOfHi(config)};`);
    }
  });

  it.each<Backend | 'memory'>(['memory', 'rest'])(
    'reserves the worst case, settles to the real usage, and refuses what cannot fit (%s)',
    async (backend) => {
      const store = backend === 'memory' ? {} : onRedis(backend, 'budget');
      const budget = { TOKEN_BUDGET: '400', MAX_OUTPUT_TOKENS: '100' };
      const config = testConfig({ OPENAI_BASE_URL: h.fake.url, ...budget, ...store });
      const settled: Promise<unknown>[] = [];
      const handler = buildHandler(config, { waitUntil: (p) => void settled.push(p) });
      const worstCase = worstCaseOfHi(config);
      h.fake.script({ kind: 'reply', text: 'one two three four five six seven eight nine ten' });
      const first = await handler(fromIp('198.51.100.20'));
      expect(first.headers.get('ratelimit')).toContain(`"tokens";r=${400 - worstCase};`);
      expect(await first.text()).toContain('ten');
      await Promise.all(settled);
      const usage = Math.ceil(JSON.stringify(h.fake.calls[0]?.body.messages).length / 4) + 10;
      // The reservation went back, less what the reply really cost.
      const second = await handler(fromIp('198.51.100.20'));
      expect(second.headers.get('ratelimit')).toContain(`"tokens";r=${400 - usage - worstCase};`);
      await second.text();
      await Promise.all(settled);
      const long = 'x'.repeat(400 - 2 * usage - worstCase + 10); // its worst case no longer fits what is left
      const third = await handler(chatRequest(userSays(long), { headers: { 'x-real-ip': '198.51.100.20' } }));
      expect(third.status).toBe(429);
      const body = (await third.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('token_budget_exceeded');
      expect(body.error.message).toMatch(/used up your message allowance.*try again in/);
      expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(h.fake.calls).toHaveLength(2);
    },
  );

  it.each<Backend | 'memory'>(['memory', 'tcp'])(
    'never overshoots: 100 concurrent 500-token requests against a 1,000-token budget (%s)',
    async (backend) => {
      const store = backend === 'memory' ? {} : onRedis(backend, 'overshoot');
      const config = testConfig({
        OPENAI_BASE_URL: h.fake.url,
        TOKEN_BUDGET: '1000',
        MAX_OUTPUT_TOKENS: '500',
        ...store,
      });
      const settled: Promise<unknown>[] = [];
      const handler = buildHandler(config, { waitUntil: (p) => void settled.push(p) });
      h.fake.script(...Array.from({ length: 100 }, () => ({ kind: 'long', tokens: 500 }) as const));
      const responses = await Promise.all(
        Array.from({ length: 100 }, () => handler(fromIp('198.51.100.30'))),
      );
      await Promise.all(responses.map((r) => r.text()));
      await Promise.all(settled);
      const served = responses.filter((r) => r.status === 200);
      expect(served).toHaveLength(1); // 500 + the prompt, reserved twice, would not fit in 1,000
      expect(responses.filter((r) => r.status === 429)).toHaveLength(99);
      const charged = h.fake.calls.reduce(
        (n, c) => n + Math.ceil(JSON.stringify(c.body.messages).length / 4) + c.tokensSent,
        0,
      );
      expect(charged).toBeLessThanOrEqual(1000);
    },
  );

  it('charges an abandoned stream for what was generated before the abort', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      TOKEN_BUDGET: '1000',
      MAX_OUTPUT_TOKENS: '100',
      ...onRedis('tcp', 'abandon'),
    });
    const logs: RequestLog[] = [];
    const handler = buildHandler(config, { logs });
    h.fake.script({ kind: 'stall', afterTokens: 3 });
    const res = await handler(fromIp('198.51.100.21'));
    const reader = res.body?.getReader();
    await reader?.read();
    await reader?.cancel();
    // The log line is written once the reservation has been settled.
    await eventually(() => logs.some((l) => l.outcome === 'cancelled'));
    const next = await handler(fromIp('198.51.100.21'));
    await next.text();
    const left = Number(/"tokens";r=(\d+)/.exec(next.headers.get('ratelimit') ?? '')?.[1]);
    const worstCase = worstCaseOfHi(config);
    // No usage chunk arrived: the prompt at the bound its reservation used, plus the 1 to 3 deltas streamed before
    // the abort (the client read one chunk; more may have reached the proxy by then).
    const cost = 1000 - worstCase - left;
    const promptBound = worstCase - config.caps.maxOutputTokens;
    expect(cost).toBeGreaterThanOrEqual(promptBound + 1);
    expect(cost).toBeLessThanOrEqual(promptBound + 3);
  });
});

describe('headers', () => {
  it('puts remaining quota on a 200 and the full set on a 429', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_WINDOW: '60 s',
      TOKEN_BUDGET: '5000',
      TOKEN_BUDGET_WINDOW: '1 h',
    });
    const handler = buildHandler(config);
    const ok = await drain(await handler(fromIp('192.0.2.1')));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-ratelimit-limit')).toBe('2');
    expect(ok.headers.get('x-ratelimit-remaining')).toBe('1');
    const reset = Number(ok.headers.get('x-ratelimit-reset'));
    expect(reset).toBe(Math.ceil(((Math.floor(Date.now() / 60_000) + 1) * 60_000) / 1000));
    expect(ok.headers.get('ratelimit-policy')).toBe('"requests";q=2;w=60, "tokens";q=5000;w=3600');
    const tokensLeft = 5000 - worstCaseOfHi(config); // what is left after this request's reservation
    expect(ok.headers.get('ratelimit')).toMatch(
      new RegExp(`^"requests";r=1;t=\\d+, "tokens";r=${tokensLeft};t=\\d+$`),
    );

    await drain(await handler(fromIp('192.0.2.1')));
    const refused = await handler(fromIp('192.0.2.1'));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('ratelimit')).toMatch(/^"requests";r=0;t=\d+/);
    expect(refused.headers.get('ratelimit-policy')).toBeTruthy();
    const body = (await refused.json()) as { error: { code: string; message: string; request_id: string } };
    expect(body.error.code).toBe('rate_limited');
    expect(body.error.message).toMatch(/too quickly\. Please wait \d+ seconds? and try again\./);
    expect(body.error.request_id).toBe(refused.headers.get('x-request-id'));
  });

  it('never calls the upstream for a refused request', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, RATE_LIMIT_REQUESTS: '1' }));
    await drain(await handler(fromIp('192.0.2.2')));
    await drain(await handler(fromIp('192.0.2.2')));
    expect(h.fake.calls).toHaveLength(1);
  });
});

describe('Redis outage', () => {
  let logs: RequestLog[];
  beforeEach(() => {
    logs = [];
  });

  /** A TCP server that accepts connections and never says a word: Redis up but stuck. */
  async function blackHole(): Promise<string> {
    const sockets: Socket[] = [];
    const server: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    });
    const address = server.address();
    return `redis://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  async function outageHandler(
    kind: 'rest-hang' | 'rest-down' | 'tcp-hang' | 'tcp-refused',
    fail: 'local' | 'open' | 'closed',
  ) {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      ...(fail === 'local' ? {} : { RATE_LIMIT_FAIL: fail }), // local is the default
      REDIS_TIMEOUT_MS: '50',
      RATE_LIMIT_PREFIX: uniquePrefix('outage'),
      ...(await deadStore(kind)),
    });
    return buildHandler(config, { logs });
  }

  /** Where a stuck or stopped Redis answers: a REST bridge that hangs or is gone, a silent socket, a closed port. */
  async function deadStore(
    kind: 'rest-hang' | 'rest-down' | 'tcp-hang' | 'tcp-refused',
  ): Promise<Record<string, string>> {
    if (kind === 'tcp-hang') return { REDIS_URL: await blackHole() };
    if (kind === 'tcp-refused') return { REDIS_URL: 'redis://127.0.0.1:1' };
    const dead = await startUpstashBridge();
    if (kind === 'rest-hang') dead.setMode('hang');
    closers.push(() => dead.close());
    if (kind === 'rest-down') await dead.close(); // stopped mid-test: connection refused from now on
    return { UPSTASH_REDIS_REST_URL: dead.url, UPSTASH_REDIS_REST_TOKEN: dead.token };
  }

  const kinds = ['rest-hang', 'rest-down', 'tcp-hang', 'tcp-refused'] as const;

  // How long the guard waits is tested with a deterministic clock in tests/store-guard.test.ts; these tests are
  // about what each policy does once the store is given up on (a hang would fail them by their own timeout).
  it.each(kinds)(
    'carries on with this instance’s own limits by default (%s): same limits, said in a header and the log',
    async (kind) => {
      const handler = await outageHandler(kind, 'local');
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await drain(await handler(fromIp('192.0.2.50'))));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 429]);
      for (const res of answers) expect(res.headers.get('x-ratelimit-fail')).toBe('local');
      await eventually(() => logs.length === 3);
      expect(logs[0]).toMatchObject({ ratelimit: 'fail_local', status: 200 });
      expect(logs[0]?.ratelimit_error).toMatch(/unavailable/);
      expect(logs[2]).toMatchObject({ status: 429, error_code: 'rate_limited' });
      expect(JSON.stringify(logs)).not.toContain(bridge.token);
    },
  );

  it.each(kinds)('fails open when asked (%s): serves without limits, and says so', async (kind) => {
    const handler = await outageHandler(kind, 'open');
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await drain(await handler(fromIp('192.0.2.52'))));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(answers[0]?.headers.get('x-ratelimit-fail')).toBe('open');
    await eventually(() => logs.length === 3);
    expect(logs[0]).toMatchObject({ ratelimit: 'fail_open', status: 200 });
  });

  it.each(kinds)('fails closed when asked (%s): 503, never a 500 or a hang', async (kind) => {
    const handler = await outageHandler(kind, 'closed');
    const res = await handler(fromIp('192.0.2.51'));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('rate_limiter_unavailable');
    expect(h.fake.calls).toHaveLength(0);
    expect(logs[0]).toMatchObject({ status: 503, error_code: 'rate_limiter_unavailable' });
  });
});

describe('stream cap', () => {
  it.each<Backend | 'memory'>(['memory', 'tcp'])(
    'lets 4 of 50 concurrent streams from one caller through, refuses 46, and frees the slots when they end (%s)',
    async (backend) => {
      const store = backend === 'memory' ? {} : onRedis(backend, 'streams');
      // Identical prompts would share one upstream stream: this counts streams, so each is its own.
      const config = testConfig({
        OPENAI_BASE_URL: h.fake.url,
        MAX_STREAMS_PER_CALLER: '4',
        COALESCE: 'off',
        ...store,
      });
      const handler = buildHandler(config);
      h.fake.script(...Array.from({ length: 4 }, () => ({ kind: 'stall', afterTokens: 1 }) as const));
      const responses = await Promise.all(Array.from({ length: 50 }, () => handler(fromIp('198.51.100.40'))));
      const streaming = responses.filter((r) => r.status === 200);
      const refused = responses.filter((r) => r.status === 429);
      expect(streaming).toHaveLength(4);
      expect(refused).toHaveLength(46);
      const body = (await refused[0]?.json()) as { error: { code: string } };
      expect(body.error.code).toBe('too_many_streams');
      expect(refused[0]?.headers.get('retry-after')).toBe('1');
      // The clients leave; their upstreams are aborted and their slots come back.
      for (const res of streaming) await res.body?.cancel();
      h.fake.script({ kind: 'reply', text: 'Back again.' });
      await eventually(async () => (await drain(await handler(fromIp('198.51.100.40')))).status === 200);
    },
  );
});

describe('caller identity', () => {
  it('refuses a request whose caller cannot be identified instead of using a shared bucket', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }));
    const req = new Request('http://proxy.test/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(userSays('Hi')),
    });
    const res = await handler(req);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('caller_unidentified');
    expect(h.fake.calls).toHaveLength(0);
  });

  it('treats garbage in the IP header as no IP', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }));
    expect((await handler(fromIp('not-an-ip'))).status).toBe(403);
    expect((await handler(fromIp('999.1.1.1'))).status).toBe(403);
  });

  it('buckets IPv6 callers by /64, so rotating the interface id does not dodge the limit', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, RATE_LIMIT_REQUESTS: '1' }));
    expect((await drain(await handler(fromIp('2001:db8:1:2::1')))).status).toBe(200);
    expect((await drain(await handler(fromIp('2001:db8:1:2:aaaa:bbbb:cccc:dddd')))).status).toBe(429);
    expect((await drain(await handler(fromIp('2001:db8:1:3::1')))).status).toBe(200);
  });

  it('reads a trusted proxy header, taking only the entry the proxy itself appended to x-forwarded-for', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '1',
      CLIENT_IP_HEADER: 'X-Forwarded-For',
    });
    const handler = buildHandler(config);
    const via = (xff: string) =>
      chatRequest(userSays('Hi'), { headers: { 'x-forwarded-for': xff, 'x-real-ip': TEST_IP } });
    expect((await drain(await handler(via('10.9.9.9, 198.51.100.60')))).status).toBe(200);
    // A spoofed left-hand entry changes nothing: the caller is still 198.51.100.60.
    expect((await drain(await handler(via('1.2.3.4, 198.51.100.60')))).status).toBe(429);
    expect((await handler(chatRequest(userSays('Hi')))).status).toBe(403); // bypassed the proxy: no header
  });

  it('logs the caller id with each request', async () => {
    const logs: RequestLog[] = [];
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }), { logs });
    await drain(await handler(fromIp('::ffff:192.0.2.77')));
    await eventually(() => logs.length === 1);
    expect(logs[0]).toMatchObject({ caller: 'ip:192.0.2.77', ratelimit: 'allowed' });
  });
});

/** Every command Redis runs that names one of `prefix`'s keys, in order: what a request really asked. */
async function watchCommands(prefix: string) {
  const monitor = await monitorRedis();
  const client = new IORedis(REDIS_TEST_URL);
  const seen = () => monitor.commands.filter((args) => args.some((arg) => arg.startsWith(`${prefix}:`)));
  let marks = 0;
  return {
    /** Scripts run against the token budget: bookings and settlements (`FINISH`), never the request count. */
    ledger: () =>
      seen().filter((args) => /^evalsha$/i.test(args[0] ?? '') && args.some((a) => a.includes(':tok:'))),
    /** Resolves once Redis has run, and MONITOR has shown, every command sent before this call. */
    async sync() {
      const mark = `${prefix}:mark:${++marks}`;
      await client.get(mark);
      await eventually(() => seen().some((args) => args[1] === mark), 10_000);
    },
    close: () => {
      monitor.close();
      client.disconnect();
    },
  };
}

async function keysTotal(
  prefix: string,
  pattern: string,
  read: (redis: IORedis, key: string) => Promise<number>,
) {
  const redis = new IORedis(REDIS_TEST_URL);
  try {
    const keys = await redis.keys(`${prefix}:${pattern}`);
    let total = 0;
    for (const key of keys) total += await read(redis, key);
    return total;
  } finally {
    redis.disconnect();
  }
}

describe.each<Backend>(['tcp', 'rest'])('the count and the booking asked together (%s)', (backend) => {
  it('undoes what a refused request booked, and books nothing for that caller again until its window resets', async () => {
    const store = onRedis(backend, 'together');
    const prefix = store.RATE_LIMIT_PREFIX as string;
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_WINDOW: '60 s',
      COALESCE: 'off',
      ...store,
    });
    const settled: Promise<unknown>[] = [];
    const handler = buildHandler(config, { waitUntil: (p) => void settled.push(p) });
    const commands = await watchCommands(prefix);
    closers.push(commands.close);
    h.fake.script({ kind: 'reply', text: 'One.' }, { kind: 'reply', text: 'Two.' });
    const served = [
      await drain(await handler(fromIp('198.51.100.90'))),
      await drain(await handler(fromIp('198.51.100.90'))),
    ];
    expect(served.map((r) => r.status)).toEqual([200, 200]);
    await Promise.all(settled);
    const tokensServed = await keysTotal(prefix, 'tok:*', async (r, k) => Number(await r.get(k)));
    const ledgerBefore = commands.ledger().length;

    const refused = await handler(fromIp('198.51.100.90'));
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
    await Promise.all(settled);
    // It was booked with the count, then given back in full: the tokens and the stream slot.
    await eventually(() => commands.ledger().length === ledgerBefore + 2);
    expect(await keysTotal(prefix, 'tok:*', async (r, k) => Number(await r.get(k)))).toBe(tokensServed);
    expect(await keysTotal(prefix, 'streams:*', (r, k) => r.zcard(k))).toBe(0);

    // Now known to be refused: the next one is counted alone, and never booked.
    const again = await handler(fromIp('198.51.100.90'));
    expect(again.status).toBe(429);
    await again.text();
    await Promise.all(settled);
    await commands.sync();
    expect(commands.ledger()).toHaveLength(ledgerBefore + 2);
    expect(h.fake.calls).toHaveLength(2);
  });
});

describe('the count and the booking asked together (tcp, one connection)', () => {
  it('a burst past the request limit admits exactly the limit: no refused booking takes an admitted slot', async () => {
    const config = testConfig({
      OPENAI_BASE_URL: h.fake.url,
      RATE_LIMIT_REQUESTS: '4',
      MAX_STREAMS_PER_CALLER: '4', // a refused request's booking ahead of an admitted one would take its slot
      COALESCE: 'off',
      ...onRedis('tcp', 'burst-together'),
    });
    const handler = buildHandler(config);
    h.fake.script(...Array.from({ length: 4 }, () => ({ kind: 'stall', afterTokens: 1 }) as const));
    const responses = await Promise.all(Array.from({ length: 12 }, () => handler(fromIp('198.51.100.91'))));
    const codes = await Promise.all(
      responses
        .filter((r) => r.status === 429)
        .map(async (r) => ((await r.json()) as { error: { code: string } }).error.code),
    );
    expect(responses.filter((r) => r.status === 200)).toHaveLength(4);
    expect(codes).toEqual(Array.from({ length: 8 }, () => 'rate_limited'));
    for (const res of responses) if (res.status === 200) await res.body?.cancel();
  });
});
