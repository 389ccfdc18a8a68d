import * as z from 'zod/mini';
import { commaList, httpUrl, intBetween, invalid } from './env';

export interface SecurityConfig {
  /** Exact origins, `https://*.example.com` patterns, or `*`; the page's own origin is always allowed. */
  readonly allowedOrigins: readonly string[];
  /**
   * The page's own origin, from `PUBLIC_URL`: where the chat page is served (`https://myapp.fly.dev`). Configured,
   * never taken from the request: a Host header is whatever the caller's DNS said (DNS rebinding).
   */
  readonly publicOrigin: string | undefined;
  /** Outside production, a refused origin is told which setting would let it in; in production the log says it. */
  readonly explainRefusals: boolean;
  readonly corsMaxAgeSeconds: number;
  /** Static bearer tokens → caller ids. Empty: no static tokens. */
  readonly authTokens: ReadonlyMap<string, StaticCaller>;
  readonly jwt:
    | {
        readonly secret: string | undefined;
        readonly jwksUrl: string | undefined;
        readonly issuer: string | undefined;
        readonly audience: string | undefined;
      }
    | undefined;
}

const ORIGIN = /^(\*|https?:\/\/(\*\.)?[a-z0-9.-]+(:\d{1,5})?|null)$/;

const origin = z.string().check(
  z.toLowerCase(),
  z.overwrite((o) => o.replace(/\/+$/, '')),
  z.regex(ORIGIN, 'must list origins like https://app.example.com, https://*.example.com or *'),
);

export const securityEnv = z.object({
  PUBLIC_URL: z.optional(httpUrl()),
  ALLOWED_ORIGINS: z.optional(commaList(origin)),
  CORS_MAX_AGE: intBetween(0, 86_400, 600),
  AUTH_TOKENS: z.optional(z.string()),
  AUTH_JWT_SECRET: z.optional(
    z.string().check(z.minLength(32, 'must be at least 32 characters (HS256 needs a strong secret)')),
  ),
  AUTH_JWKS_URL: z.optional(httpUrl()),
  AUTH_JWT_ISSUER: z.optional(z.string()),
  AUTH_JWT_AUDIENCE: z.optional(z.string()),
});

type SecurityEnv = z.output<typeof securityEnv>;

export function toSecurityConfig(e: SecurityEnv, production: boolean): SecurityConfig {
  if (e.AUTH_JWT_SECRET && e.AUTH_JWKS_URL) {
    throw invalid('AUTH_JWT_SECRET/AUTH_JWKS_URL', 'exclude each other: set one of them, not both');
  }
  const jwtOn = Boolean(e.AUTH_JWT_SECRET || e.AUTH_JWKS_URL);
  if (!jwtOn && (e.AUTH_JWT_ISSUER || e.AUTH_JWT_AUDIENCE)) {
    throw invalid('AUTH_JWT_ISSUER/AUTH_JWT_AUDIENCE', 'need AUTH_JWT_SECRET or AUTH_JWKS_URL');
  }
  return {
    allowedOrigins: e.ALLOWED_ORIGINS ?? [],
    publicOrigin: e.PUBLIC_URL ? new URL(e.PUBLIC_URL).origin : undefined,
    explainRefusals: !production,
    corsMaxAgeSeconds: e.CORS_MAX_AGE,
    authTokens: parseTokens(e.AUTH_TOKENS),
    jwt: jwtOn
      ? {
          secret: e.AUTH_JWT_SECRET,
          jwksUrl: e.AUTH_JWKS_URL,
          issuer: e.AUTH_JWT_ISSUER,
          audience: e.AUTH_JWT_AUDIENCE,
        }
      : undefined,
  };
}

/** A static caller: its id, and its priority in the queue for upstream capacity (higher goes first). */
export interface StaticCaller {
  readonly caller: string;
  readonly priority: number;
}

/**
 * `AUTH_TOKENS=alice:token1,bob=2:token2`: caller id, an optional `=priority` (a whole number 0-100, the caller's
 * tier in the queue for upstream capacity), colon, token (tokens may not contain commas).
 */
function parseTokens(value: string | undefined): Map<string, StaticCaller> {
  const tokens = new Map<string, StaticCaller>();
  for (const entry of (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    const [caller = '', tier = '0'] = entry.slice(0, Math.max(0, colon)).split('=');
    const token = entry.slice(colon + 1);
    if (colon < 1 || !/^[\w.@-]{1,64}$/.test(caller) || token.length < 16 || !isPriority(tier)) {
      // Never echo the entry: it holds a secret.
      throw invalid(
        'AUTH_TOKENS',
        'must be "caller:token" or "caller=priority:token" pairs (priority 0-100), each token at least 16 characters',
      );
    }
    tokens.set(token, { caller, priority: Number(tier) });
  }
  return tokens;
}

/** A queue priority: a whole number from 0 (everyone's default) to 100. */
export function isPriority(value: unknown): boolean {
  const n = typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 100;
}
