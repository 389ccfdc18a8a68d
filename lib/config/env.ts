import * as z from 'zod/mini';

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting is missing or malformed. The message names the variable but never echoes its value (it may be secret). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
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
  throw new ConfigError(`Invalid configuration:\n  - ${lines.join('\n  - ')}`);
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
