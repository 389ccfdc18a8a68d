import * as z from 'zod/mini';

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting is missing or malformed. The message names the variable but never echoes its value (it may be secret). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const PREFIX = 'Invalid configuration:';

/** The one way to refuse a setting: `invalid('REDIS_URL', 'must be …')`. Never pass the value: it may be secret. */
export function invalid(variable: string, message: string): ConfigError {
  return new ConfigError(`${PREFIX}\n  - ${variable} ${message}`);
}

/** Validates environment variables against a schema; shared by every part that reads the environment. */
export function parseEnv<T extends z.ZodMiniType>(schema: T, env: Env): z.output<T> {
  // `FOO=` in a .env file means "not set", not "set to the empty string".
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''),
  );
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map(
    (issue) => `${String(issue.path[0] ?? 'environment')} ${issue.message}`,
  );
  throw new ConfigError(`${PREFIX}\n  - ${lines.join('\n  - ')}`);
}

/** A whole number from an env string, between `min` and `max`, with a default. */
export const intBetween = (min: number, max: number, fallback: number) =>
  z._default(
    z.coerce
      .number({ error: 'must be a whole number' })
      .check(
        z.refine(Number.isInteger, 'must be a whole number'),
        z.gte(min, `must be between ${min} and ${max}`),
        z.lte(max, `must be between ${min} and ${max}`),
      ),
    fallback,
  );

/**
 * A positive whole number from an env string, with a default: limits, counts and timeouts all read this way.
 * (zod/mini throughout: the classic API is not tree-shakable and would add 430 KB to the edge bundle.)
 */
export const positiveInt = (fallback: number) =>
  z._default(
    z.coerce
      .number({ error: 'must be a whole number' })
      .check(z.refine(Number.isInteger, 'must be a whole number'), z.positive('must be greater than 0')),
    fallback,
  );

/** A comma-separated list, trimmed, empty entries dropped, each entry checked by `item`. */
export const commaList = <T extends z.ZodMiniType<unknown, string>>(item: T) =>
  z.pipe(
    z.string(),
    z.pipe(
      z.transform((value: string) =>
        value
          .split(',')
          .map((entry) => entry.trim())
          .filter(Boolean),
      ),
      z.array(item),
    ),
  );

/** An http(s) URL, trailing slashes dropped. */
export const httpUrl = () =>
  z.pipe(
    z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    z.transform((url: string) => url.replace(/\/+$/, '')),
  );

/** The one model-name rule: what `CHAT_MODEL`, `ALLOWED_MODELS` and `FALLBACK_MODELS` accept. */
export const MODEL_NAME = /^[\w./:@-]{1,200}$/;

export const modelName = () =>
  z
    .string()
    .check(
      z.trim(),
      z.minLength(1, 'must not be empty'),
      z.maxLength(200, 'is too long'),
      z.regex(MODEL_NAME, 'may only contain letters, digits and . / : @ - _'),
    );

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration such as `500 ms`, `60 s`, `10 m` or `1 d`, in milliseconds. */
export const duration = (fallback: string) =>
  z.pipe(
    z._default(z.string(), fallback),
    z.transform((value: string, ctx) => {
      const match = /^\s*(\d+)\s*(ms|s|m|h|d)\s*$/.exec(value);
      const ms = match ? Number(match[1]) * UNITS[match[2] as keyof typeof UNITS] : 0;
      if (ms <= 0) {
        ctx.issues.push({
          code: 'custom',
          input: value,
          message: 'must be a duration such as "500 ms", "60 s", "10 m" or "1 d"',
        });
      }
      return ms;
    }),
  );
