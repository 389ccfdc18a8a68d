import * as z from 'zod/mini';
import { duration, httpUrl, invalid, positiveInt } from './env';

export type StoreConfig =
  | { readonly kind: 'upstash'; readonly url: string; readonly token: string }
  | { readonly kind: 'redis'; readonly url: string }
  | { readonly kind: 'memory' };

export interface RateLimitConfig {
  /** Requests per caller per window (sliding window). */
  readonly requests: number;
  readonly windowMs: number;
  /** Total tokens (prompt + completion) per caller per budget window. */
  readonly tokenBudget: number;
  readonly budgetWindowMs: number;
  /** Replies one caller may have streaming at once, across every instance on the store. */
  readonly maxStreamsPerCaller: number;
  /** A stream slot expires this long after its last renewal, so a crashed instance frees its slots. */
  readonly streamLeaseMs: number;
  /**
   * What to do when Redis is down or slow: `local` (default) carries on with this instance's own in-memory count
   * and the same limits, `open` serves without limits (and says so), `closed` answers 503.
   */
  readonly failMode: 'local' | 'open' | 'closed';
  /** A Redis call slower than this counts as an outage. Short, because it sits in front of every chat. */
  readonly redisTimeoutMs: number;
  readonly store: StoreConfig;
  /** Key prefix in Redis, so several deployments can share one database. */
  readonly prefix: string;
  /** A header set by a proxy you trust (e.g. `fly-client-ip`, `x-forwarded-for`); unset = the platform's own IP. */
  readonly clientIpHeader: string | undefined;
  /** With `x-forwarded-for`: how many trusted proxies append to it (we read the entry they saw). */
  readonly trustedProxyHops: number;
  /** Spend limits in USD, booked on the same store and with the same reservations as the token budget. */
  readonly spend: SpendLimits;
}

/**
 * Amounts are whole micro-dollars (millionths of a USD), so Redis counts them with integer arithmetic like tokens.
 * 0 means the limit is off.
 */
export interface SpendLimits {
  /** Per caller per `windowMs` (sliding window, like the token budget): `SPEND_BUDGET_USD`. */
  readonly budgetMicros: number;
  readonly windowMs: number;
  /** For the whole deployment per UTC day: `GLOBAL_SPEND_BUDGET_USD`, the owner's last line of defence. */
  readonly globalDailyMicros: number;
}

/** An amount in USD, as micro-dollars. At most 10 million: far above any budget, far below float trouble. */
const usd = () =>
  z.optional(
    z.pipe(
      z.coerce
        .number({ error: 'must be an amount in USD, such as 5 or 0.50' })
        .check(z.positive('must be greater than 0'), z.lte(10_000_000, 'must be at most 10000000')),
      z.transform((dollars: number) => Math.round(dollars * 1_000_000)),
    ),
  );

const count = positiveInt;

/** The parts of `REDIS_URL` the TCP connection logs in with (server/resp-connection.ts). */
export interface RedisUrlParts {
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The database to SELECT; 0 when the URL has no path. */
  readonly db: number;
}

/**
 * Reads `REDIS_URL` as the TCP connection does; throws, naming the variable and the part but never its value. The
 * config checks it with this at startup, so a typo fails there, not at the first connect. Of the query parameters
 * ioredis read, `db` and `password` are read here too, and `family` is let through (the connection tries IPv6 and IPv4
 * by itself, as Railway's private network wants); any other would be silently ignored, so it is refused.
 */
export function redisUrlParts(url: URL): RedisUrlParts {
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error('REDIS_URL must be a redis:// or rediss:// URL');
  const decode = (part: string, what: string) => {
    if (!part) return undefined;
    try {
      return decodeURIComponent(part);
    } catch {
      throw new Error(`REDIS_URL's ${what} is not URL-encoded (write % as %25)`);
    }
  };
  const query = new Map<string, string>();
  for (const [name, value] of url.searchParams) {
    if (!REDIS_URL_QUERY.has(name))
      throw new Error(`REDIS_URL's query may only hold db, password and family (not "${name.slice(0, 32)}")`);
    if (query.has(name)) throw new Error(`REDIS_URL's query names ${name} twice`);
    query.set(name, value);
  }
  // An empty parameter counts as absent.
  const fromPath = url.pathname.slice(1);
  const fromQuery = query.get('db') || undefined;
  if (!/^(\/\d*)?$/.test(url.pathname) || !/^(\d+)?$/.test(fromQuery ?? ''))
    throw new Error("REDIS_URL's database must be a number, as in redis://host:6379/2");
  if (fromPath && fromQuery !== undefined && Number(fromPath) !== Number(fromQuery))
    throw new Error('REDIS_URL names two databases, in its path and in ?db=');
  // A `+` in ?password= reads as a space, as in any query string (ioredis read it so too): %2B is a plus.
  const password = decode(url.password, 'password') ?? (query.get('password') || undefined);
  return { username: decode(url.username, 'user name'), password, db: Number(fromPath || fromQuery || 0) };
}

const REDIS_URL_QUERY = new Set(['db', 'password', 'family']);

function readableRedisUrl(url: string): boolean {
  try {
    redisUrlParts(new URL(url));
    return true;
  } catch {
    return false;
  }
}

export const rateLimitEnv = z.object({
  RATE_LIMIT_REQUESTS: count(20),
  RATE_LIMIT_WINDOW: duration('60 s'),
  TOKEN_BUDGET: count(100_000),
  TOKEN_BUDGET_WINDOW: duration('1 d'),
  RATE_LIMIT_FAIL: z._default(
    z.enum(['local', 'open', 'closed'], { error: 'must be "local", "open" or "closed"' }),
    'local',
  ),
  MAX_STREAMS_PER_CALLER: count(4),
  STREAM_LEASE_MS: count(30_000),
  REDIS_TIMEOUT_MS: count(300),
  RATE_LIMIT_STORE: z._default(
    z.enum(['auto', 'upstash', 'redis', 'memory'], { error: 'must be auto, upstash, redis or memory' }),
    'auto',
  ),
  RATE_LIMIT_PREFIX: z._default(
    z.string().check(z.regex(/^[\w:.-]{1,64}$/, 'may only contain letters, digits and : . - _')),
    'ai-chat-proxy',
  ),
  UPSTASH_REDIS_REST_URL: z.optional(httpUrl()),
  UPSTASH_REDIS_REST_TOKEN: z.optional(z.string()),
  KV_REST_API_URL: z.optional(httpUrl()),
  KV_REST_API_TOKEN: z.optional(z.string()),
  REDIS_URL: z.optional(
    z
      .url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
      .check(
        z.refine(
          readableRedisUrl,
          'must have its user and password URL-encoded (% as %25), a database number as its path (or ?db=) and no query parameter but db, password and family, as in rediss://default:password@host:6379/0',
        ),
      ),
  ),
  CLIENT_IP_HEADER: z.optional(
    z.string().check(z.toLowerCase(), z.regex(/^[a-z0-9-]{1,64}$/, 'must be a header name')),
  ),
  TRUSTED_PROXY_HOPS: count(1),
  SPEND_BUDGET_USD: usd(),
  SPEND_BUDGET_WINDOW: duration('1 d'),
  GLOBAL_SPEND_BUDGET_USD: usd(),
});

type RateLimitEnv = z.output<typeof rateLimitEnv>;

export function toRateLimitConfig(e: RateLimitEnv, production: boolean): RateLimitConfig {
  return {
    requests: e.RATE_LIMIT_REQUESTS,
    windowMs: e.RATE_LIMIT_WINDOW,
    tokenBudget: e.TOKEN_BUDGET,
    budgetWindowMs: e.TOKEN_BUDGET_WINDOW,
    maxStreamsPerCaller: e.MAX_STREAMS_PER_CALLER,
    streamLeaseMs: e.STREAM_LEASE_MS,
    failMode: e.RATE_LIMIT_FAIL,
    redisTimeoutMs: e.REDIS_TIMEOUT_MS,
    store: chooseStore(e, production),
    prefix: e.RATE_LIMIT_PREFIX,
    clientIpHeader: e.CLIENT_IP_HEADER,
    trustedProxyHops: e.TRUSTED_PROXY_HOPS,
    spend: {
      budgetMicros: e.SPEND_BUDGET_USD ?? 0,
      windowMs: e.SPEND_BUDGET_WINDOW,
      globalDailyMicros: e.GLOBAL_SPEND_BUDGET_USD ?? 0,
    },
  };
}

function chooseStore(e: RateLimitEnv, production: boolean): StoreConfig {
  const url = e.UPSTASH_REDIS_REST_URL ?? e.KV_REST_API_URL;
  const token = e.UPSTASH_REDIS_REST_TOKEN ?? e.KV_REST_API_TOKEN;
  const upstash = url && token ? ({ kind: 'upstash', url, token } as const) : undefined;
  const redis = e.REDIS_URL ? ({ kind: 'redis', url: e.REDIS_URL } as const) : undefined;
  if (url && !token) throw invalid('UPSTASH_REDIS_REST_TOKEN', 'is required with UPSTASH_REDIS_REST_URL');
  switch (e.RATE_LIMIT_STORE) {
    case 'upstash':
      if (!upstash) throw invalid('RATE_LIMIT_STORE=upstash', 'needs UPSTASH_REDIS_REST_URL and _TOKEN');
      return upstash;
    case 'redis':
      if (!redis) throw invalid('RATE_LIMIT_STORE=redis', 'needs REDIS_URL');
      return redis;
    case 'memory':
      return { kind: 'memory' };
    case 'auto': {
      const chosen = upstash ?? redis;
      if (chosen) return chosen;
      // Per-process limits on a platform that runs many instances would quietly multiply every limit.
      if (production) {
        throw invalid(
          'RATE_LIMIT_STORE',
          'has no shared store: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (or KV_REST_API_URL/_TOKEN, or REDIS_URL). For a single-instance server, RATE_LIMIT_STORE=memory keeps limits in memory on purpose.',
        );
      }
      return { kind: 'memory' };
    }
  }
}
