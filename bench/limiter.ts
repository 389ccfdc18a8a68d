import { loadConfig } from '../lib/config';
import { defaultInternal } from '../lib/internal';
import { createRateLimitGate } from '../lib/limits/gate';
import { memoryLimitStores } from '../lib/limits/memory-store';
import { redisLimitStores } from '../lib/limits/redis-store';
import type { LimitStores } from '../lib/limits/stores';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL } from '../tests/support/redis';
import { startUpstashBridge } from '../tests/support/upstash-bridge';
import { ms, summarize } from './stats';

/**
 * What the rate-limit step adds to each request: `gate.admit()` (the request rate, and the token reservation and
 * the stream slot in one script, sent together: one round trip for an admitted request), and `gate.settle()` at its end,
 * timed over many requests against each store. Needs a redis-server on 127.0.0.1:6379 (as the tests do).
 */
const REQUESTS = Number(process.env.BENCH_LIMITER_REQUESTS ?? 2000);

const config = loadConfig({
  OPENAI_API_KEY: 'bench',
  RATE_LIMIT_REQUESTS: '1000000',
  TOKEN_BUDGET: '1000000000',
});
const bridge = await startUpstashBridge();
const tcp = tcpRedis(REDIS_TEST_URL, 1_000);
const prefix = `bench:${process.pid}`;
const stores: [string, LimitStores][] = [
  ['memory', memoryLimitStores(config.rateLimit, Date.now)],
  [
    'REDIS_URL (TCP)',
    redisLimitStores(tcp.redis, { ...config.rateLimit, kind: 'redis', prefix: `${prefix}:tcp` }, Date.now),
  ],
  [
    'Upstash REST (loopback bridge)',
    redisLimitStores(
      upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 1_000 }),
      {
        ...config.rateLimit,
        kind: 'upstash',
        prefix: `${prefix}:rest`,
      },
      Date.now,
    ),
  ],
];

console.log(
  `limiter latency per request, ${REQUESTS} sequential requests from 100 callers, after 200 warm-up\n`,
);
for (const [name, store] of stores) {
  const gate = createRateLimitGate({
    config: config.rateLimit,
    stores: store,
    clientIp: (req) => req.headers.get('x-real-ip') ?? undefined,
    waitUntil: () => {},
    internal: defaultInternal,
    secrets: [],
  });
  const request = (i: number) =>
    new Request('http://bench/api/chat', { headers: { 'x-real-ip': `198.51.100.${i % 100}` } });
  for (let i = 0; i < 200; i++) await gate.settle(await gate.admit(request(i), undefined, 1_000), 300);
  const samples: number[] = [];
  const settling: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const req = request(i);
    const started = performance.now();
    const admission = await gate.admit(req, undefined, 1_000);
    const admitted = performance.now();
    samples.push(admitted - started);
    await gate.settle(admission, 300); // off the hot path in the proxy: it runs after the reply has ended
    settling.push(performance.now() - admitted);
  }
  const s = summarize(samples);
  const e = summarize(settling);
  console.log(
    `${name.padEnd(32)} admit p50 ${ms(s.p50)}  p99 ${ms(s.p99)}  mean ${ms(s.mean)} | settle p50 ${ms(e.p50)}  p99 ${ms(e.p99)}  (n=${s.n})`,
  );
}
await bridge.close();
await tcp.close();
