import type { Redis } from '@upstash/redis';
import type { Subscribe } from '../redis/connect';
import type { CapacityStore } from './capacity-store';

/**
 * Per provider, under one hash tag: `P:{provider}:open`, a sorted set of stream leases scored by when they expire,
 * and `P:{provider}:starts`, a sorted set of request starts in the last minute. The clock is the Redis server's, so
 * instances with skewed clocks still agree. A slot freed is announced on `P:{provider}:freed` (only with pub/sub).
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, rpm, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
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
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
if rpm > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], 61000)
end
return {1, 0}`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
return 1`;

const RELEASE = `
local gone = redis.call('ZREM', KEYS[1], ARGV[1])
if gone == 1 and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
return gone`;

export function redisCapacityStore(
  redis: Redis,
  options: { prefix: string; subscribe?: Subscribe | undefined },
): CapacityStore {
  const acquire = redis.createScript<[number, number]>(ACQUIRE);
  const renew = redis.createScript<number>(RENEW);
  const release = redis.createScript<number>(RELEASE);
  const key = (provider: string) => {
    const base = `${options.prefix}:capacity:{${provider}}`;
    return {
      open: `${base}:open`,
      starts: `${base}:starts`,
      freed: `${base}:freed`,
    };
  };
  const { subscribe } = options;
  return {
    async tryAcquire(provider, leaseId, limits, leaseMs) {
      const k = key(provider);
      const args = [leaseId, String(limits.maxConcurrent ?? 0), String(limits.rpm ?? 0), String(leaseMs)];
      const [granted, retryInMs] = await acquire.exec([k.open, k.starts], args);
      return Number(granted) === 1
        ? { granted: true }
        : { granted: false, retryInMs: Math.max(1, Number(retryInMs)) };
    },
    async renew(provider, leaseId, leaseMs) {
      await renew.exec([key(provider).open], [leaseId, String(leaseMs)]);
    },
    async release(provider, leaseId) {
      const k = key(provider);
      await release.exec([k.open], [leaseId, subscribe ? k.freed : '']);
    },
    ...(subscribe && { watch: (provider: string, wake: () => void) => subscribe(key(provider).freed, wake) }),
  };
}
