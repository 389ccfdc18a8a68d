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

async function cacheHits(store: string): Promise<void> {
  const chat = handler({ ...stores[store], CACHE_TTL: '1 h' });
  const prompt = `Cache me (${store}, ${process.pid})`;
  await timed(chat(ask(prompt)));
  const samples: number[] = [];
  for (let i = 0; i < HITS; i++) {
    const hit = await timed(chat(ask(prompt)));
    if (hit.cache !== 'HIT') throw new Error(`expected a hit, got ${hit.cache}`);
    samples.push(hit.ttfb);
  }
  const s = summarize(samples);
  console.log(`cache hit, ${store.padEnd(6)}: first byte p50 ${ms(s.p50)}, p99 ${ms(s.p99)} (${HITS} hits)`);
}

/** One leader on instance A; FOLLOWERS identical requests on `on` (A itself, or B) a moment later. */
async function followers(store: string, sameInstance: boolean): Promise<void> {
  const a = handler(stores[store] ?? {});
  const b = sameInstance ? a : handler(stores[store] ?? {});
  const prompt = `Follow me (${store}, ${sameInstance}, ${process.pid})`;
  fake.script({
    kind: 'paced',
    tokenDelayMs: 20,
    text: 'A reply that takes a little while to stream out, '.repeat(2),
  });
  const monitor = await monitorCommands(`${base.RATE_LIMIT_PREFIX}:reply`);
  const start = performance.now();
  const leader = timed(a(ask(prompt)), start);
  await new Promise((resolve) => setTimeout(resolve, 5));
  const rest = Array.from({ length: FOLLOWERS }, () => timed(b(ask(prompt)), start));
  const [lead, ...follow] = await Promise.all([leader, ...rest]);
  const commands = await monitor.stop();
  if (fake.calls.length !== 1) throw new Error(`expected 1 upstream call, saw ${fake.calls.length}`);
  if (follow.some((f) => f.text !== lead?.text || f.role !== 'follower'))
    throw new Error('a follower differed');
  fake.reset();
  const where = sameInstance ? 'same instance' : `other instance, ${store}`;
  const ttft = summarize(follow.map((f) => f.ttfb));
  console.log(
    `followers (${where.padEnd(21)}): leader first token ${ms(lead?.ttfb ?? 0)}, followers p50 ${ms(ttft.p50)} / max ${ms(ttft.p99)}; ` +
      `reply-log commands: ${commands} in all, ${((commands - (LEADER_COMMANDS[store] ?? 0)) / FOLLOWERS).toFixed(1)} per follower`,
  );
}

/** What the leader alone runs (claim, batched writes, finish), measured with no follower: subtracted above. */
const LEADER_COMMANDS: Record<string, number> = { memory: 0, tcp: 0, rest: 0 };

async function leaderAlone(store: string): Promise<void> {
  const a = handler(stores[store] ?? {});
  fake.script({
    kind: 'paced',
    tokenDelayMs: 20,
    text: 'A reply that takes a little while to stream out, '.repeat(2),
  });
  const monitor = await monitorCommands(`${base.RATE_LIMIT_PREFIX}:reply`);
  await timed(a(ask(`Lead alone (${store}, ${process.pid})`)));
  LEADER_COMMANDS[store] = await monitor.stop();
  fake.reset();
  console.log(
    `leader alone (${store}): ${LEADER_COMMANDS[store]} reply-log commands for a 20-token reply paced at 20 ms`,
  );
}

try {
  for (const store of ['memory', 'tcp', 'rest']) await cacheHits(store);
  for (const store of ['tcp', 'rest']) await leaderAlone(store);
  await followers('memory', true);
  for (const store of ['tcp', 'rest']) await followers(store, false);
} finally {
  for (const close of closers) await close();
  await bridge.close();
  await fake.close();
}
