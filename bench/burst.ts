import { startFakeUpstream } from '../fake-upstream';
import { type Env, loadConfig } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { tcpRedis } from '../server/redis-tcp';
import { burst } from '../tests/support/burst';
import { REDIS_TEST_PORT, REDIS_TEST_URL } from '../tests/support/redis';
import { startTcpProxy } from '../tests/support/tcp-proxy';
import { startUpstashBridgeProcess } from '../tests/support/upstash-bridge';

/**
 * The burst of issue #9, repeated: 1,000 concurrent requests from one caller, limit 30, on an event loop kept busy,
 * through one and two instances sharing Redis (TCP and Upstash REST), and with Redis stopped after the first 10.
 * Prints the admitted count of every run. Needs a redis-server on 127.0.0.1:6379 (as the tests do).
 */
const RUNS = Number(process.env.BURST_RUNS ?? 10);
const fake = await startFakeUpstream({ apiKey: 'bench-key' });
const bridge = await startUpstashBridgeProcess();
const quiet = () => {};

function handlers(count: number, store: Env) {
  const config = loadConfig({
    OPENAI_API_KEY: 'bench-key',
    OPENAI_BASE_URL: fake.url,
    RATE_LIMIT_REQUESTS: '30',
    RATE_LIMIT_WINDOW: '1 d',
    MAX_STREAMS_PER_CALLER: '1000000',
    RATE_LIMIT_PREFIX: `bench-burst:${process.pid}:${Math.random().toString(36).slice(2)}`,
    ...store,
  });
  const proxies = Array.from({ length: count }, () =>
    createProxy(config, {
      clientIp: (req) => req.headers.get('x-real-ip') ?? undefined,
      tcpRedis,
      log: quiet,
    }),
  );
  return {
    instances: proxies.map((p) => p.handler),
    close: () => Promise.all(proxies.map((p) => p.close())),
  };
}

const rest = (url: string) => ({ UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: bridge.token });
const rows = new Map<string, string[]>();
const record = (scenario: string, admitted: number[]) => {
  rows.set(scenario, [...(rows.get(scenario) ?? []), admitted.join('+')]);
};
for (let run = 0; run < RUNS; run++) {
  for (const [name, store] of [
    ['TCP', { REDIS_URL: REDIS_TEST_URL }],
    ['REST', rest(bridge.url)],
  ] as const) {
    for (const count of [1, 2]) {
      const { instances, close } = handlers(count, store);
      const result = await burst({ instances, requests: 1_000, ip: '198.51.100.99', busy: true });
      record(`${name}, ${count} instance(s), busy`, result.admitted);
      await close();
    }
    const stoppable =
      name === 'TCP' ? await startTcpProxy(REDIS_TEST_PORT) : await startUpstashBridgeProcess();
    const { instances, close } = handlers(
      2,
      name === 'TCP' ? { REDIS_URL: stoppable.url } : rest(stoppable.url),
    );
    const stop = () => ('stop' in stoppable ? stoppable.stop() : stoppable.close());
    const midway = { afterRequests: 10, action: stop };
    const result = await burst({ instances, requests: 1_000, ip: '198.51.100.98', busy: true, midway });
    record(`${name}, 2 instances, Redis stopped after 10`, result.admitted);
    await close();
  }
}
console.log(`admitted per run (limit 30; "a+b" = per instance), ${RUNS} runs of 1,000 concurrent requests:`);
for (const [scenario, counts] of rows) console.log(`  ${scenario.padEnd(42)} ${counts.join('  ')}`);
await bridge.close();
await fake.close();
