import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { burst } from './support/burst';
import { buildHandler, startHarness, testConfig } from './support/harness';
import { REDIS_TEST_PORT, REDIS_TEST_URL, uniquePrefix } from './support/redis';
import { startTcpProxy } from './support/tcp-proxy';
import { type BridgeProcess, startUpstashBridgeProcess } from './support/upstash-bridge';

/**
 * The promise the project exists for, under the attack that broke it: 1,000 concurrent requests from one caller
 * with a limit of 30, on a busy event loop, through one and two instances sharing Redis. A busy process must
 * never look like a Redis outage, and a real outage must leave each instance with its own limits, not none.
 */
const h = await startHarness();
// Upstash is remote in production: its stand-in runs in a process of its own, so the busy loop here cannot starve it.
let bridge: BridgeProcess;
beforeAll(async () => {
  bridge = await startUpstashBridgeProcess();
});
afterAll(() => bridge.close());

const REQUESTS = 1_000;
const LIMIT = 30;

type Backend = 'tcp' | 'rest';

function limitsOn(store: Record<string, string>) {
  return testConfig({
    OPENAI_BASE_URL: h.fake.url,
    RATE_LIMIT_REQUESTS: String(LIMIT),
    RATE_LIMIT_WINDOW: '1 d', // one window for the whole burst, so "per window" is the whole burst
    RATE_LIMIT_PREFIX: uniquePrefix('burst'),
    ...store,
  });
}

function sharedStore(
  backend: Backend,
  restUrl = bridge.url,
  tcpUrl = REDIS_TEST_URL,
): Record<string, string> {
  if (backend === 'tcp') return { REDIS_URL: tcpUrl };
  return { UPSTASH_REDIS_REST_URL: restUrl, UPSTASH_REDIS_REST_TOKEN: bridge.token };
}

describe.each<Backend>(['tcp', 'rest'])('a burst of 1,000 from one caller, limit 30 (%s)', (backend) => {
  it.each([1, 2])('admits at most 30 through %i instance(s) on a busy event loop', async (count) => {
    const config = limitsOn(sharedStore(backend));
    const instances = Array.from({ length: count }, () => buildHandler(config));
    const result = await burst({ instances, requests: REQUESTS, ip: '198.51.100.77', busy: true });
    const total = result.admitted.reduce((a, b) => a + b, 0);
    expect(total, JSON.stringify(result)).toBeLessThanOrEqual(LIMIT);
    expect(total).toBeGreaterThan(0);
    expect(result.statuses[429]).toBe(REQUESTS - total);
  });

  it('admits at most 30 per instance when Redis is stopped mid-burst', async () => {
    const stoppable =
      backend === 'tcp'
        ? await startTcpProxy(REDIS_TEST_PORT)
        : await startUpstashBridgeProcess(bridge.token);
    const config = limitsOn(
      backend === 'tcp' ? sharedStore('tcp', '', stoppable.url) : sharedStore('rest', stoppable.url),
    );
    const stop = () => ('stop' in stoppable ? stoppable.stop() : stoppable.close());
    const instances = [buildHandler(config), buildHandler(config)];
    // Mid-burst: the first 10 are decided by Redis, then it goes away under the other 990, which arrive at once.
    const midway = { afterRequests: 10, action: stop };
    const result = await burst({ instances, requests: REQUESTS, ip: '198.51.100.78', busy: true, midway });
    for (const admitted of result.admitted)
      expect(admitted, JSON.stringify(result)).toBeLessThanOrEqual(LIMIT);
    expect(result.failedOver).toBeGreaterThan(0); // the outage really did hit mid-burst
    expect(result.statuses[500]).toBeUndefined();
  });
});
