import type { Redis } from '@upstash/redis';
import type { RateLimitConfig } from '../config/rate-limit';
import { memoryLimitStores } from './memory-store';
import { redisLimitStores } from './redis-store';
import type { LimitStores } from './stores';

/** The stores the config asks for. `redis` is the client for the `upstash` or `redis` kinds, built by the caller. */
export function limitStoresFor(config: RateLimitConfig, redis: Redis | undefined): LimitStores {
  if (config.store.kind === 'memory' || !redis) return memoryLimitStores(config);
  return redisLimitStores(redis, { ...config, kind: config.store.kind });
}

/** The one startup line that says where limits live, so nobody runs per-process limits by accident. */
export function describeStores(config: RateLimitConfig): string {
  const where = {
    upstash: 'Upstash Redis (REST), shared by every instance',
    redis: 'Redis (REDIS_URL, TCP), shared by every instance',
    memory: 'in-memory, this process only (set UPSTASH_REDIS_REST_URL/_TOKEN or REDIS_URL to share them)',
  }[config.store.kind];
  const seconds = (ms: number) => `${ms / 1000} s`;
  return `Rate limits: ${config.requests} requests / ${seconds(config.windowMs)} and ${config.tokenBudget} tokens / ${seconds(config.budgetWindowMs)} per caller, ${where}; if the store is down: fail ${config.failMode}.`;
}
