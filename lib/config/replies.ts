import * as z from 'zod/mini';
import { duration, positiveInt } from './env';

/**
 * One reply, many readers (lib/replies): the response cache, coalescing of identical prompts in flight, and
 * resumable streams. All three record the reply as it is produced; they differ in who may read it.
 */
export interface RepliesConfig {
  /** How long a complete reply is replayed to identical requests; 0 (the default) turns the cache off. */
  readonly cacheTtlMs: number;
  /** `caller` (default): a reply is shared only with the caller who asked; `global`: with every caller. */
  readonly cacheScope: 'caller' | 'global';
  /** `instant` (default): a hit streams at once, in the original chunks; `paced`: at the original speed. */
  readonly cacheReplay: 'instant' | 'paced';
  /** The in-memory cache (one instance, or the store being down) keeps at most this many bytes, least recent first out. */
  readonly cacheMaxBytes: number;
  /** Identical requests in flight share one upstream call (`COALESCE=on`, the default). */
  readonly coalesce: boolean;
  /** `GET /api/chat/{chatId}/stream` resumes a running reply, and a dropped connection no longer stops it. */
  readonly resume: boolean;
  /** A reply bigger than this stops being recorded: it is neither cached nor followed from other instances. */
  readonly maxReplyBytes: number;
  /** The writer's lease: readers on other instances give up this long after the writer stopped renewing it. */
  readonly leaseMs: number;
  /** How often a reader on another instance polls the log where it cannot be woken (Upstash REST). */
  readonly pollMs: number;
}

const onOff = z._default(z.enum(['on', 'off'], { error: 'must be "on" or "off"' }), 'off');

/** `0` (off) or a duration such as `10 m`. */
const ttl = z.pipe(
  z.string(),
  z.transform((value: string, ctx) => {
    if (value.trim() === '0') return 0;
    const parsed = duration('0 ms').safeParse(value);
    if (parsed.success) return parsed.data;
    ctx.issues.push({
      code: 'custom',
      input: value,
      message: 'must be 0 (off) or a duration such as "10 m" or "1 h"',
    });
    return 0;
  }),
);

export const repliesEnv = z.object({
  CACHE_TTL: z._default(ttl, 0),
  CACHE_SCOPE: z._default(z.enum(['caller', 'global'], { error: 'must be "caller" or "global"' }), 'caller'),
  CACHE_REPLAY: z._default(
    z.enum(['instant', 'paced'], { error: 'must be "instant" or "paced"' }),
    'instant',
  ),
  CACHE_MAX_BYTES: positiveInt(32 * 1024 * 1024),
  COALESCE: z._default(z.enum(['on', 'off'], { error: 'must be "on" or "off"' }), 'on'),
  RESUME: onOff,
  REPLY_MAX_BYTES: positiveInt(512 * 1024),
  REPLY_LEASE_MS: positiveInt(5_000),
  REPLY_POLL_MS: positiveInt(100),
});

export function toRepliesConfig(e: z.output<typeof repliesEnv>): RepliesConfig {
  return {
    cacheTtlMs: e.CACHE_TTL,
    cacheScope: e.CACHE_SCOPE,
    cacheReplay: e.CACHE_REPLAY,
    cacheMaxBytes: e.CACHE_MAX_BYTES,
    coalesce: e.COALESCE === 'on',
    resume: e.RESUME === 'on',
    maxReplyBytes: e.REPLY_MAX_BYTES,
    leaseMs: e.REPLY_LEASE_MS,
    pollMs: e.REPLY_POLL_MS,
  };
}
