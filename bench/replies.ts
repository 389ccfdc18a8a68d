import { startFakeUpstream } from '../fake-upstream';
import { loadConfig } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL } from '../tests/support/redis';
import { startUpstashBridge } from '../tests/support/upstash-bridge';
import { monitorCommands } from './redis-monitor';
import { ms, summarize } from './stats';

/**
 * What the reply log does for time and for Redis (issue 12), in one process against the local redis-server:
 * a cache hit's time to first byte, a follower's time to first token against its leader's (on the leader's
 * instance, and on another one over TCP and over Upstash REST), and the reply-log commands Redis ran per follower,
 * counted with MONITOR (the scripts' own inner commands left out). Bounded: a few hundred requests.
 */
const HITS = Number(process.env.BENCH_HITS ?? 200);
const FOLLOWERS = 5;
const fake = await startFakeUpstream();
const bridge = await startUpstashBridge();
// A second instance's own way to Upstash REST: the bridge holds one Redis connection, and commands are told apart by it.
const otherBridge = await startUpstashBridge();
const base = {
  OPENAI_API_KEY: 'bench-key',
  OPENAI_BASE_URL: fake.url,
  CHAT_MODEL: 'bench-model',
  RATE_LIMIT_REQUESTS: '1000000000',
  TOKEN_BUDGET: '1000000000000',
  MAX_STREAMS_PER_CALLER: '1000000000',
  RATE_LIMIT_PREFIX: `bench-replies-${process.pid}`,
};
const stores: Record<string, Record<string, string>> = {
  memory: { RATE_LIMIT_STORE: 'memory' },
  tcp: { REDIS_URL: REDIS_TEST_URL },
  rest: { UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: bridge.token },
  otherRest: { UPSTASH_REDIS_REST_URL: otherBridge.url, UPSTASH_REDIS_REST_TOKEN: otherBridge.token },
};
const closers: (() => Promise<void>)[] = [];
const handler = (env: Record<string, string>) => {
  const config = loadConfig({ ...base, ...env });
  const proxy = createProxy(config, { clientIp: () => '203.0.113.9', tcpRedis, log: () => {} });
  closers.push(proxy.close);
  return proxy.handler;
};
const ask = (text: string) =>
  new Request('http://bench/api/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/plain' },
    body: JSON.stringify({ messages: [{ role: 'user', content: text }] }),
  });

/** Time to the first body byte, and the whole text. */
async function timed(answer: Promise<Response>, started = performance.now()) {
  const res = await answer;
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  const ttfb = performance.now() - started;
  let text = new TextDecoder().decode(first.value);
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    text += new TextDecoder().decode(next.value);
  }
  return { ttfb, text, role: res.headers.get('x-coalesced'), cache: res.headers.get('x-cache') };
}

/**
 * Hits on the instance that produced the reply (its memory: every store) and, with Redis, on another instance (the
 * shared log's hit: one claim that returns the whole reply).
 */
async function cacheHits(store: string, on: 'same instance' | 'other instance'): Promise<void> {
  const produced = handler({ ...stores[store], CACHE_TTL: '1 h' });
  const chat = on === 'same instance' ? produced : handler({ ...stores[store], CACHE_TTL: '1 h' });
  const prompt = `Cache me (${store}, ${on}, ${process.pid})`;
  await timed(produced(ask(prompt)));
  const samples: number[] = [];
  for (let i = 0; i < HITS; i++) {
    let hit = await timed(chat(ask(prompt)));
    // On another instance, the first requests may come before the end has reached Redis: they follow, for free.
    for (let tries = 0; i === 0 && hit.cache !== 'HIT' && tries < 50; tries++)
      hit = await timed(chat(ask(prompt)));
    if (hit.cache !== 'HIT') throw new Error(`expected a hit, got ${hit.cache}`);
    samples.push(hit.ttfb);
  }
  const s = summarize(samples);
  const where = `${on}, ${store}`.padEnd(20);
  console.log(`cache hit (${where}): first byte p50 ${ms(s.p50)}, p99 ${ms(s.p99)} (${HITS} hits)`);
}

const PACED: Parameters<typeof fake.script>[0] = {
  kind: 'paced',
  tokenDelayMs: 20,
  text: 'A reply that takes a little while to stream out, '.repeat(2),
};

/**
 * One leader on instance A; FOLLOWERS identical requests on `on` (A itself, or B) a moment later. The reply-log
 * commands are counted by connection: B's are what following costs; A's, its leader's writes (more often once
 * followed). A warm-up request on A first shows which connections are A's.
 */
async function followers(store: string, sameInstance: boolean): Promise<void> {
  fake.reset(); // the upstream calls counted below are this function's: the warm-up's and the leader's
  const a = handler(stores[store] ?? {});
  const b = sameInstance ? a : handler(stores[store === 'rest' ? 'otherRest' : store] ?? {});
  const warm = await monitorCommands(`${base.RATE_LIMIT_PREFIX}:reply`);
  await timed(a(ask(`Warm up A (${store}, ${sameInstance}, ${process.pid})`)));
  const leaderClients = new Set((await warm.stop()).byClient.keys());
  const prompt = `Follow me (${store}, ${sameInstance}, ${process.pid})`;
  fake.script(PACED);
  const monitor = await monitorCommands(`${base.RATE_LIMIT_PREFIX}:reply`);
  const start = performance.now();
  const leader = timed(a(ask(prompt)), start);
  await new Promise((resolve) => setTimeout(resolve, 5));
  const rest = Array.from({ length: FOLLOWERS }, () => timed(b(ask(prompt)), start));
  const [lead, ...follow] = await Promise.all([leader, ...rest]);
  const { total, byClient } = await monitor.stop();
  if (fake.calls.length !== 2) throw new Error(`expected 1 upstream call, saw ${fake.calls.length - 1}`);
  if (follow.some((f) => f.text !== lead?.text || f.role !== 'follower'))
    throw new Error('a follower differed');
  fake.reset();
  let byLeader = 0;
  for (const [client, count] of byClient) if (leaderClients.has(client)) byLeader += count;
  const where = sameInstance ? 'same instance' : `other instance, ${store}`;
  const ttft = summarize(follow.map((f) => f.ttfb));
  console.log(
    `followers (${where.padEnd(21)}): leader first token ${ms(lead?.ttfb ?? 0)}, followers p50 ${ms(ttft.p50)} / max ${ms(ttft.p99)}; ` +
      `reply-log commands: ${total - byLeader} for the ${FOLLOWERS} followers, ${byLeader} by their leader`,
  );
}

/** What the leader alone runs (claim, batched writes, finish), with no follower. */
async function leaderAlone(store: string): Promise<void> {
  const a = handler(stores[store] ?? {});
  fake.script(PACED);
  const monitor = await monitorCommands(`${base.RATE_LIMIT_PREFIX}:reply`);
  await timed(a(ask(`Lead alone (${store}, ${process.pid})`)));
  const { total } = await monitor.stop();
  fake.reset();
  console.log(`leader alone (${store}): ${total} reply-log commands for a 20-token reply paced at 20 ms`);
}

try {
  await cacheHits('memory', 'same instance');
  for (const store of ['tcp', 'rest']) await cacheHits(store, 'other instance');
  for (const store of ['tcp', 'rest']) await leaderAlone(store);
  await followers('memory', true);
  for (const store of ['tcp', 'rest']) await followers(store, false);
} finally {
  for (const close of closers) await close();
  await bridge.close();
  await otherBridge.close();
  await fake.close();
}
