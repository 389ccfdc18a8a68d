import { startFakeUpstream } from '../fake-upstream';
import { loadConfig } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL } from '../tests/support/redis';
import { startUpstashBridge } from '../tests/support/upstash-bridge';
import { monitorCommands } from './redis-monitor';
import { ms, summarize } from './stats';

/**
 * Heavy traffic (issue 13): an upstream that takes 10 streams at once, 200 clients at once through 2 instances on the
 * local Redis (TCP, then Upstash REST). Reports the queue wait (request in → upstream call out), the upstream's 429s,
 * its peak of open streams, and the capacity commands Redis ran per request (MONITOR, scripts' inner commands left
 * out). Bounded: 200 requests per store.
 */
const CLIENTS = Number(process.env.BENCH_QUEUE_CLIENTS ?? 200);
const fake = await startFakeUpstream({ maxConcurrent: 10 });
const bridge = await startUpstashBridge();
const closers: (() => Promise<void>)[] = [];

async function run(store: string, env: Record<string, string>): Promise<void> {
  fake.reset();
  fake.script(...Array.from({ length: CLIENTS }, () => ({ kind: 'paced' as const, tokenDelayMs: 10 })));
  const config = loadConfig({
    OPENAI_API_KEY: 'bench-key',
    OPENAI_BASE_URL: fake.url,
    CHAT_MODEL: 'bench-model',
    RATE_LIMIT_REQUESTS: '1000000000',
    TOKEN_BUDGET: '1000000000000',
    MAX_STREAMS_PER_CALLER: '1000000000',
    RATE_LIMIT_PREFIX: `bench-queue-${process.pid}-${store}`,
    UPSTREAM_MAX_CONCURRENT: '10',
    UPSTREAM_MAX_ATTEMPTS: '1',
    QUEUE_MAX_LENGTH: String(CLIENTS),
    QUEUE_MAX_WAIT_MS: '15000',
    ...env,
  });
  const instances = [0, 1].map(() =>
    createProxy(config, { clientIp: () => '203.0.113.9', tcpRedis, log: () => {} }),
  );
  for (const proxy of instances) closers.push(proxy.close);
  const monitor = await monitorCommands(':capacity:');
  const sentAt = new Map<string, number>();
  const statuses = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const text = `Question ${i} (${store}, ${process.pid})`;
      sentAt.set(text, performance.now());
      const proxy = instances[i % 2] as (typeof instances)[number];
      const res = await proxy.handler(
        new Request('http://bench/api/chat', {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'text/plain',
            'x-real-ip': `198.51.100.${i % 50}`,
          },
          body: JSON.stringify({ messages: [{ role: 'user', content: text }] }),
        }),
      );
      await res.text();
      return res.status;
    }),
  );
  const commands = (await monitor.stop()).total;
  const waits = fake.calls.map((call) => {
    const text = String(call.body.messages?.at(-1)?.content ?? '');
    return call.startedAt - (sentAt.get(text) ?? call.startedAt);
  });
  const wait = summarize(waits);
  const failed = statuses.filter((s) => s !== 200).length;
  console.log(
    `${store.padEnd(5)}: ${CLIENTS} clients, ${failed} failed; queue wait p50 ${ms(wait.p50)}, p99 ${ms(wait.p99)}; ` +
      `upstream 429s ${fake.rejected}; peak streams ${fake.peakInFlight}; ` +
      `capacity commands ${commands} (${(commands / CLIENTS).toFixed(1)} per request)`,
  );
}

try {
  await run('tcp', { REDIS_URL: REDIS_TEST_URL });
  await run('rest', { UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: bridge.token });
} finally {
  for (const close of closers) await close();
  await bridge.close();
  await fake.close();
}
