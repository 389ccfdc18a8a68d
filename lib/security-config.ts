import { z } from 'zod';
import { ConfigError } from './env';

export interface SecurityConfig {
  /** Exact origins, `https://*.example.com` patterns, or `*`; the page's own origin is always allowed. */
  readonly allowedOrigins: readonly string[];
  readonly corsMaxAgeSeconds: number;
  /** Static bearer tokens → caller ids. Empty: no static tokens. */
  readonly authTokens: ReadonlyMap<string, string>;
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

export const securityEnv = z
  .object({
    ALLOWED_ORIGINS: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((o) => o.trim().toLowerCase().replace(/\/+$/, ''))
          .filter(Boolean),
      )
      .pipe(
        z.array(
          z
            .string()
            .regex(ORIGIN, 'must list origins like https://app.example.com, https://*.example.com or *'),
        ),
      ),
    CORS_MAX_AGE: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int()
      .min(0)
      .max(86_400, 'must be at most 86400')
      .default(600),
    AUTH_TOKENS: z.string().optional(),
    AUTH_JWT_SECRET: z
      .string()
      .min(32, 'must be at least 32 characters (HS256 needs a strong secret)')
      .optional(),
    AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    AUTH_JWT_ISSUER: z.string().optional(),
    AUTH_JWT_AUDIENCE: z.string().optional(),
  })
  .partial({ ALLOWED_ORIGINS: true });

type SecurityEnv = z.output<typeof securityEnv>;

export function toSecurityConfig(e: SecurityEnv): SecurityConfig {
  if (e.AUTH_JWT_SECRET && e.AUTH_JWKS_URL) {
    throw new ConfigError('Invalid configuration:\n  - set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both');
  }
  const jwtOn = Boolean(e.AUTH_JWT_SECRET || e.AUTH_JWKS_URL);
  if (!jwtOn && (e.AUTH_JWT_ISSUER || e.AUTH_JWT_AUDIENCE)) {
    throw new ConfigError(
      'Invalid configuration:\n  - AUTH_JWT_ISSUER/AUTH_JWT_AUDIENCE need AUTH_JWT_SECRET or AUTH_JWKS_URL',
    );
  }
  return {
    allowedOrigins: e.ALLOWED_ORIGINS ?? [],
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

/** `AUTH_TOKENS=alice:token1,bob:token2`: caller id, colon, token (tokens may not contain commas). */
function parseTokens(value: string | undefined): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const entry of (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    const caller = entry.slice(0, colon);
    const token = entry.slice(colon + 1);
    if (colon < 1 || !/^[\w.@-]{1,64}$/.test(caller) || token.length < 16) {
      // Never echo the entry: it holds a secret.
      throw new ConfigError(
        'Invalid configuration:\n  - AUTH_TOKENS must be "caller:token" pairs, each token at least 16 characters',
      );
    }
    tokens.set(token, caller);
  }
  return tokens;
}
