import type { Redis } from '@upstash/redis';
import { ConfigError } from '../config/env';
import type { RateLimitConfig, SpendLimits } from '../config/rate-limit';
import { memoryLimitStores } from './memory-store';
import { redisLimitStores } from './redis-store';
import type { LimitStores } from './stores';

/**
 * The stores the config asks for. A Redis kind with no Redis client is a startup error, never a quiet fallback to
 * per-process limits: that would multiply every limit by the number of instances.
 */
export function createLimitStores(
  config: RateLimitConfig,
  redis: Redis | undefined,
  now: () => number,
): LimitStores {
  const { kind } = config.store;
  if (kind === 'memory') return memoryLimitStores(config, now);
  if (!redis)
    throw new ConfigError(`The ${kind} rate-limit store was configured but no Redis client was built.`);
  return redisLimitStores(redis, { ...config, kind }, now);
}

/** The one startup line that says where limits live, so nobody runs per-process limits by accident. */
export function describeStores(config: RateLimitConfig): string {
  const where = {
    upstash: 'Upstash Redis (REST), shared by every instance',
    redis: 'Redis (REDIS_URL, TCP), shared by every instance',
    memory: 'in-memory, this process only (set UPSTASH_REDIS_REST_URL/_TOKEN or REDIS_URL to share them)',
  }[config.store.kind];
  const seconds = (ms: number) => `${ms / 1000} s`;
  const outage = {
    local: 'each instance carries on with its own count',
    open: 'serve without limits',
    closed: 'refuse with 503',
  }[config.failMode];
  return `Rate limits: ${config.requests} requests / ${seconds(config.windowMs)}, ${config.tokenBudget} tokens / ${seconds(config.budgetWindowMs)}${describeSpend(config.spend)} and ${config.maxStreamsPerCaller} streams at once per caller, ${where}; if the store is down: ${outage} (RATE_LIMIT_FAIL=${config.failMode}).`;
}

/** `, $0.5 / 86400 s (and $100 a UTC day for everyone)`, or nothing when no spend limit is on. */
function describeSpend(spend: SpendLimits): string {
  const usd = (micros: number) => `$${micros / 1e6}`;
  const perCaller = spend.budgetMicros ? `, ${usd(spend.budgetMicros)} / ${spend.windowMs / 1000} s` : '';
  const global = spend.globalDailyMicros
    ? ` (and ${usd(spend.globalDailyMicros)} a UTC day for everyone)`
    : '';
  return perCaller + global;
}
