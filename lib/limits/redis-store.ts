import { Ratelimit } from '@upstash/ratelimit';
import type { Redis } from '@upstash/redis';
import type { SpendLimits } from '../config/rate-limit';
import type { Windows } from './memory-store';
import {
  type Amount,
  type BookedWindows,
  type Booking,
  DAY_MS,
  type Ledger,
  type LimitStores,
  previousWeight,
  windowIndex,
} from './stores';

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
 * All or nothing: reserve `ARGV[2]` tokens if the caller's sliding total stays within `ARGV[1]`, `ARGV[11]`
 * micro-dollars if the caller's sliding spend stays within `ARGV[10]` and the deployment's spend today within
 * `ARGV[14]` (a limit of '0' is off), and take a stream slot if fewer than `ARGV[8]` unexpired leases are held.
 * Answers {tokens ok, tokens used before, slot ok, spend ok, spent before, global ok, spent today before}.
 */
const BOOK = `
local function used(previous, current, weight)
  return math.floor(tonumber(redis.call('GET', previous) or '0') * tonumber(weight)) + tonumber(redis.call('GET', current) or '0')
end
local tokens = used(KEYS[1], KEYS[2], ARGV[3])
local micros = tonumber(ARGV[11])
local spent, today = 0, 0
if ARGV[10] ~= '0' then spent = used(KEYS[4], KEYS[5], ARGV[12]) end
if ARGV[14] ~= '0' then today = tonumber(redis.call('GET', KEYS[6]) or '0') end
local tokensOk = (tokens + tonumber(ARGV[2]) <= tonumber(ARGV[1])) and 1 or 0
local spendOk = (ARGV[10] == '0' or spent + micros <= tonumber(ARGV[10])) and 1 or 0
local globalOk = (ARGV[14] == '0' or today + micros <= tonumber(ARGV[14])) and 1 or 0
if tokensOk == 0 or spendOk == 0 or globalOk == 0 then return {tokensOk, tokens, 0, spendOk, spent, globalOk, today} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[8]) then return {1, tokens, 0, 1, spent, 1, today} end
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if ARGV[10] ~= '0' then
  redis.call('INCRBY', KEYS[5], ARGV[11])
  redis.call('PEXPIRE', KEYS[5], ARGV[13])
end
if ARGV[14] ~= '0' then
  redis.call('INCRBY', KEYS[6], ARGV[11])
  redis.call('PEXPIRE', KEYS[6], ARGV[15])
end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return {1, tokens, 1, 1, spent, 1, today}`;

/**
 * Settle each reservation into its window only while that window exists (an expired one must not come back as a
 * credit): tokens by `ARGV[1]`, the caller's and the deployment's spend by `ARGV[3]`.
 */
const FINISH = `
local function settle(key, delta)
  if delta ~= '0' and redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, delta) end
end
settle(KEYS[1], ARGV[1])
settle(KEYS[3], ARGV[3])
settle(KEYS[4], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`;

type BookAnswer = [number, number, number, number, number, number, number];

function redisLedger(redis: Redis, options: Options, now: () => number): Ledger {
  const book = redis.createScript<BookAnswer>(BOOK);
  const finish = redis.createScript<number>(FINISH);
  const { budgetWindowMs: windowMs, streamLeaseMs: leaseMs } = options;
  const spend = options.spend ?? { budgetMicros: 0, windowMs: DAY_MS, globalDailyMicros: 0 };
  const keys = ledgerKeys(options.prefix);
  // Two windows plus a margin: the previous window still counts, weighted, during the current one.
  const ttl = (ms: number) => String(ms * 2 + 1_000);
  return {
    async book(callerId, amount, leaseId, maxStreams) {
      const t = now();
      const windows = {
        tokens: windowIndex(t, windowMs),
        spend: windowIndex(t, spend.windowMs),
        day: windowIndex(t, DAY_MS),
      };
      const lease = [String(t), String(t + leaseMs), leaseId, String(maxStreams), String(leaseMs * 2)];
      const answer = await book.exec(
        [
          keys.tokens(callerId, windows.tokens - 1),
          keys.tokens(callerId, windows.tokens),
          keys.streams(callerId),
          keys.spend(callerId, windows.spend - 1),
          keys.spend(callerId, windows.spend),
          keys.day(windows.day),
        ],
        [
          String(options.tokenBudget),
          String(amount.tokens),
          String(previousWeight(t, windowMs)),
          ttl(windowMs),
          ...lease,
          String(spend.budgetMicros),
          String(amount.micros),
          String(previousWeight(t, spend.windowMs)),
          ttl(spend.windowMs),
          String(spend.globalDailyMicros),
          ttl(DAY_MS),
        ],
      );
      return toBooking(answer, amount, windows, Object.assign({}, options, { spend })); // not a spread: once per request
    },
    async renew(callerId, leaseId) {
      const key = keys.streams(callerId);
      await redis
        .pipeline()
        .zadd(key, { xx: true }, { score: now() + leaseMs, member: leaseId })
        .pexpire(key, leaseMs * 2)
        .exec();
    },
    async finish(callerId, booked, delta, leaseId) {
      await finish.exec(
        [
          keys.tokens(callerId, booked.tokens),
          keys.streams(callerId),
          keys.spend(callerId, booked.spend),
          keys.day(booked.day),
        ],
        [String(delta.tokens), leaseId, String(delta.micros)],
      );
    },
  };
}

function ledgerKeys(prefix: string) {
  return {
    tokens: (id: string, window: number) => `${prefix}:tok:${id}:${window}`,
    streams: (id: string) => `${prefix}:streams:${id}`,
    spend: (id: string, window: number) => `${prefix}:usd:${id}:${window}`,
    // Caller ids always have a `kind:` prefix, so no caller's key can be this one.
    day: (day: number) => `${prefix}:usd-day:${day}`,
  };
}

/** The script's answer as a Booking: each budget's state after the reservation. */
function toBooking(
  answer: BookAnswer,
  amount: Amount,
  windows: BookedWindows,
  options: Windows & { readonly spend: SpendLimits },
): Booking {
  const [tokensOk, tokens, streamOk, spendOk, spent, globalOk, today] = answer;
  const booked = tokensOk === 1 && streamOk === 1;
  const state = (ok: number, limit: number, used: number, reserve: number, window: number, ms: number) => ({
    granted: ok === 1,
    window,
    limit,
    remaining: Math.max(0, limit - used - (booked ? reserve : 0)),
    resetAt: (window + 1) * ms,
  });
  const { spend } = options;
  const budget = state(
    tokensOk,
    options.tokenBudget,
    tokens,
    amount.tokens,
    windows.tokens,
    options.budgetWindowMs,
  );
  // Not spreads followed by properties, which Node 20 builds on a slow path (see lib/stream/respond.ts).
  return Object.assign(
    { budget },
    spend.budgetMicros > 0
      ? { spend: state(spendOk, spend.budgetMicros, spent, amount.micros, windows.spend, spend.windowMs) }
      : undefined,
    spend.globalDailyMicros > 0
      ? { globalSpend: state(globalOk, spend.globalDailyMicros, today, amount.micros, windows.day, DAY_MS) }
      : undefined,
    { stream: { granted: streamOk === 1 }, windows, booked },
  );
}
