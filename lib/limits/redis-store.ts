import { Ratelimit } from '@upstash/ratelimit';
import type { Redis } from '@upstash/redis';
import type { Windows } from './memory-store';
import { type Ledger, type LimitStores, previousWeight, windowIndex } from './stores';

interface Options extends Windows {
  readonly kind: string;
  readonly prefix: string;
}

/**
 * Stores on Redis, shared by every instance. Requests go through @upstash/ratelimit's sliding window (an atomic
 * Lua script, so the count is exact under any concurrency). The token budget and the stream slots use scripts of
 * their own, each one atomic check-and-book, so two instances can never both take the last token or the last slot.
 */
export function redisLimitStores(redis: Redis, options: Options, now: () => number): LimitStores {
  const limiter = new Ratelimit({
    redis,
    limiter: Ratelimit.slidingWindow(options.requests, `${options.windowMs} ms`),
    prefix: `${options.prefix}:req`,
    // Our own guard wraps every store call (lib/limits/store-guard.ts), so what an outage means is decided there.
    timeout: 0,
    analytics: false,
  });
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
    ledger: redisLedger(redis, options, now),
  };
}

/**
 * All or nothing: reserve `ARGV[2]` tokens if the sliding total stays within `ARGV[1]`, and take a stream slot if
 * fewer than `ARGV[8]` unexpired leases are held. Answers {budget ok, tokens used before, slot ok}.
 */
const BOOK = `
local used = math.floor(tonumber(redis.call('GET', KEYS[1]) or '0') * tonumber(ARGV[3])) + tonumber(redis.call('GET', KEYS[2]) or '0')
if used + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return {0, used, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[8]) then return {1, used, 0} end
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return {1, used, 1}`;

/** Settle into the reservation's window only while it exists (an expired one must not come back as a credit). */
const FINISH = `
if ARGV[1] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`;

function redisLedger(redis: Redis, options: Options, now: () => number): Ledger {
  const book = redis.createScript<[number, number, number]>(BOOK);
  const finish = redis.createScript<number>(FINISH);
  const { tokenBudget: limit, budgetWindowMs: windowMs, streamLeaseMs: leaseMs } = options;
  const tokensKey = (id: string, window: number) => `${options.prefix}:tok:${id}:${window}`;
  const streamsKey = (id: string) => `${options.prefix}:streams:${id}`;
  // Two windows plus a margin: the previous window still counts, weighted, during the current one.
  const tokensTtl = String(windowMs * 2 + 1_000);
  return {
    async book(callerId, tokens, leaseId, maxStreams) {
      const t = now();
      const window = windowIndex(t, windowMs);
      const keys = [tokensKey(callerId, window - 1), tokensKey(callerId, window), streamsKey(callerId)];
      const weight = String(previousWeight(t, windowMs));
      const lease = [String(t), String(t + leaseMs), leaseId, String(maxStreams), String(leaseMs * 2)];
      const [budgetOk, used, streamOk] = await book.exec(keys, [
        String(limit),
        String(tokens),
        weight,
        tokensTtl,
        ...lease,
      ]);
      const booked = budgetOk === 1 && streamOk === 1;
      const remaining = Math.max(0, limit - used - (booked ? tokens : 0));
      const budget = { granted: budgetOk === 1, window, limit, remaining, resetAt: (window + 1) * windowMs };
      return { budget, stream: { granted: streamOk === 1 }, booked };
    },
    async renew(callerId, leaseId) {
      const key = streamsKey(callerId);
      await redis
        .pipeline()
        .zadd(key, { xx: true }, { score: now() + leaseMs, member: leaseId })
        .pexpire(key, leaseMs * 2)
        .exec();
    },
    async finish(callerId, window, delta, leaseId) {
      await finish.exec([tokensKey(callerId, window), streamsKey(callerId)], [String(delta), leaseId]);
    },
  };
}
