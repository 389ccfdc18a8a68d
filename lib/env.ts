import { z } from 'zod';

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting is missing or malformed. The message names the variable but never echoes its value (it may be secret). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates environment variables against a schema; shared by every part that reads the environment. */
export function parseEnv<T extends z.ZodType>(schema: T, env: Env): z.output<T> {
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

/** A positive whole number from an env string, with a default: limits, counts and timeouts all read this way. */
export const positiveInt = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .positive('must be greater than 0')
    .default(fallback);
