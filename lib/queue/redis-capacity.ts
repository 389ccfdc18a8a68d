import type { Redis } from '@upstash/redis';
import type { Subscribe } from '../redis/connect';
import type { CapacityStore } from './capacity-store';

/**
 * Per provider, under one hash tag: `open`, a sorted set of stream leases scored by when they expire; `starts`, a
 * sorted set of request starts in the last minute; `tokens:<minute>`, the tokens booked in each minute (the sliding
 * window of `UPSTREAM_TPM`, in the same arithmetic as `tokenWindow`). The clock is the Redis server's, so instances
 * with skewed clocks still agree. A slot freed is announced on `freed` (only with pub/sub).
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, rpm, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tpm, tokens = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) - now}
end
if rpm > 0 and redis.call('ZCARD', KEYS[2]) >= rpm then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) + 60000 - now}
end
local window = math.floor(now / 60000)
local booked = KEYS[3] .. ':' .. window
if tpm > 0 then
  local current = tonumber(redis.call('GET', booked) or '0')
  local previous = tonumber(redis.call('GET', KEYS[3] .. ':' .. (window - 1)) or '0')
  local into = now - window * 60000
  local used = previous * (60000 - into) / 60000 + current
  if used + tokens > tpm then
    local wait = 60000 - into
    if previous > 0 and current + tokens <= tpm then
      wait = math.min(wait, math.ceil((used + tokens - tpm) * 60000 / previous))
    end
    return {0, math.max(1, wait)}
  end
  redis.call('INCRBY', booked, tokens)
  redis.call('PEXPIRE', booked, 180000)
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
if rpm > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], 61000)
end
return {1, window}`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
return 1`;

/** Gives the lease back and settles its tokens on the minute they were booked in (if that minute is still kept). */
const RELEASE = `
local gone = redis.call('ZREM', KEYS[1], ARGV[1])
local delta = tonumber(ARGV[3])
if delta ~= 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], delta) end
if (gone == 1 or delta < 0) and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
return gone`;

/** A pause only ever grows: a shorter one heard later does not cut a longer one short. */
const SHARE_PAUSE = `
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ms)
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\\n' .. ms) end
return 1`;

export function redisCapacityStore(
  redis: Redis,
  options: { prefix: string; subscribe?: Subscribe | undefined },
): CapacityStore {
  const acquire = redis.createScript<[number, number]>(ACQUIRE);
  const renew = redis.createScript<number>(RENEW);
  const release = redis.createScript<number>(RELEASE);
  const sharePause = redis.createScript<number>(SHARE_PAUSE);
  const key = (provider: string) => {
    const base = `${options.prefix}:capacity:{${provider}}`;
    return {
      open: `${base}:open`,
      starts: `${base}:starts`,
      tokens: `${base}:tokens`,
      freed: `${base}:freed`,
      pause: (model: string) => `${base}:pause:${model}`,
    };
  };
  const pauses = `${options.prefix}:capacity:pauses`;
  const { subscribe } = options;
  return {
    async tryAcquire(provider, leaseId, limits, leaseMs, tokens) {
      const k = key(provider);
      const args = [limits.maxConcurrent, limits.rpm, leaseMs, limits.tpm, tokens].map((n) => String(n ?? 0));
      const [granted, detail] = await acquire.exec([k.open, k.starts, k.tokens], [leaseId, ...args]);
      return Number(granted) === 1
        ? { granted: true, window: Number(detail) }
        : { granted: false, retryInMs: Math.max(1, Number(detail)) };
    },
    async renew(provider, leaseId, leaseMs) {
      await renew.exec([key(provider).open], [leaseId, String(leaseMs)]);
    },
    async release(provider, leaseId, settlement) {
      const k = key(provider);
      const booked = `${k.tokens}:${settlement?.window ?? 0}`;
      const args = [leaseId, subscribe ? k.freed : '', String(settlement?.delta ?? 0)];
      await release.exec([k.open, booked], args);
    },
    async sharePause(provider, model, ms) {
      await sharePause.exec(
        [key(provider).pause(model)],
        [String(Math.ceil(ms)), subscribe ? pauses : '', `${provider}\n${model}`],
      );
    },
    async readPause(provider, model) {
      return Math.max(0, Number(await redis.pttl(key(provider).pause(model))));
    },
    ...(subscribe && {
      watch: (provider: string, wake: () => void) =>
        subscribe(key(provider).freed, wake, { onListening: wake }),
      watchPauses: (heard: (provider: string, model: string, ms: number) => void) =>
        subscribe(pauses, (message) => {
          const [provider = '', model = '', ms = ''] = message.split('\n');
          if (Number(ms) > 0) heard(provider, model, Number(ms));
        }),
    }),
  };
}
