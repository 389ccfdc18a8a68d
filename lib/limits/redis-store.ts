import { Ratelimit } from '@upstash/ratelimit';
import type { Redis } from '@upstash/redis';
import { type LimitStores, slidingWindowUsed, windowIndex } from './stores';

interface Options {
  readonly kind: string;
  readonly prefix: string;
  readonly requests: number;
  readonly windowMs: number;
  readonly tokenBudget: number;
  readonly budgetWindowMs: number;
}

/**
 * Stores on Redis, shared by every instance. Requests go through @upstash/ratelimit's sliding window (an atomic
 * Lua script, so the count is exact under any concurrency). The token budget uses the same window arithmetic with
 * plain INCRBY, because a budget must record a charge even when it overshoots, which the limiter's script refuses.
 */
export function redisLimitStores(redis: Redis, options: Options, now: () => number): LimitStores {
  const limiter = new Ratelimit({
    redis,
    limiter: Ratelimit.slidingWindow(options.requests, `${options.windowMs} ms`),
    prefix: `${options.prefix}:req`,
    // Our own deadline wraps every store call (lib/rate-limit.ts), so that fail-open/closed is decided in one place.
    timeout: 0,
    analytics: false,
  });
  const budgetKey = (id: string, index: number) => `${options.prefix}:tok:${id}:${index}`;
  const { budgetWindowMs: windowMs, tokenBudget } = options;

  return {
    kind: options.kind,
    requests: {
      async take(callerId) {
        const result = await limiter.limit(callerId);
        return {
          allowed: result.success,
          limit: result.limit,
          remaining: Math.max(0, result.remaining),
          resetAt: result.reset,
          pending: result.pending,
        };
      },
    },
    budget: {
      async peek(callerId) {
        const t = now();
        const index = windowIndex(t, windowMs);
        const [previous, current] = await redis.mget<[number | null, number | null]>(
          budgetKey(callerId, index - 1),
          budgetKey(callerId, index),
        );
        const used = slidingWindowUsed(Number(previous ?? 0), Number(current ?? 0), t, windowMs);
        return {
          limit: tokenBudget,
          remaining: Math.max(0, tokenBudget - used),
          resetAt: (index + 1) * windowMs,
        };
      },
      async charge(callerId, tokens) {
        const key = budgetKey(callerId, windowIndex(now(), windowMs));
        // Two windows plus a margin: the previous window still counts, weighted, during the current one.
        await redis
          .multi()
          .incrby(key, tokens)
          .pexpire(key, windowMs * 2 + 1_000)
          .exec();
      },
    },
  };
}
