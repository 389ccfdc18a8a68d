/** The real redis-server the tests use; started by tests/support/global-redis.ts if nothing is listening. */
export const REDIS_TEST_HOST = '127.0.0.1';
export const REDIS_TEST_PORT = Number(process.env.REDIS_TEST_PORT ?? 6379);
export const REDIS_TEST_URL = `redis://${REDIS_TEST_HOST}:${REDIS_TEST_PORT}`;

/** A key prefix no other test or run shares, so tests never need to flush a database someone else may use. */
export function uniquePrefix(name: string): string {
  return `test:${name}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
}

export type RedisBackend = 'tcp' | 'rest';

/**
 * Settings that put the limiter's store (and so everything shared across instances) on the real Redis, over TCP or
 * through the Upstash REST bridge, under a fresh prefix.
 */
export function redisStoreEnv(
  backend: RedisBackend,
  name: string,
  bridge: { url: string; token: string },
): Record<string, string> {
  const prefix = { RATE_LIMIT_PREFIX: uniquePrefix(name) };
  if (backend === 'tcp') return { ...prefix, REDIS_URL: REDIS_TEST_URL };
  return { ...prefix, UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: bridge.token };
}
