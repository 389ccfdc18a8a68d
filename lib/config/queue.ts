import * as z from 'zod/mini';
import type { Env } from './env';
import { invalid, positiveInt } from './env';

/** What one upstream provider (a base URL + key) may be sent at once and per minute; unset = no limit of ours. */
export interface ProviderCapacity {
  readonly maxConcurrent: number | undefined;
  readonly rpm: number | undefined;
  /** Tokens per minute: each request books its worst case (prompt + max output) and settles to its real usage. */
  readonly tpm: number | undefined;
}

/** Heavy traffic: the provider's own limits, and how long and how many requests may wait for them. */
export interface QueueConfig {
  /** By provider: `main`, and each `UPSTREAM_<NAME>` in lower case. Absent or empty: never waits. */
  readonly capacity: Readonly<Record<string, ProviderCapacity>>;
  /** The longest a request waits for capacity before a 503 `queue_timeout`. */
  readonly maxWaitMs: number;
  /** Requests waiting on one instance at most; one more is a 503 `queue_full` at once. */
  readonly maxLength: number;
  /** A saturated provider: wait for it, or go to a fallback route at once (the last route always waits). */
  readonly prefer: 'wait' | 'fallback';
  /** The JWT claim whose number is the caller's priority in line (higher first); unset: everyone is equal. */
  readonly priorityClaim: string | undefined;
}

const optionalPositive = z.optional(
  z.coerce
    .number({ error: 'must be a whole number' })
    .check(z.refine(Number.isInteger, 'must be a whole number'), z.positive('must be greater than 0')),
);

export const queueEnv = z.object({
  UPSTREAM_MAX_CONCURRENT: optionalPositive,
  UPSTREAM_RPM: optionalPositive,
  UPSTREAM_TPM: optionalPositive,
  QUEUE_MAX_WAIT_MS: positiveInt(10_000),
  QUEUE_MAX_LENGTH: positiveInt(100),
  QUEUE_PREFER: z._default(z.enum(['wait', 'fallback'], { error: 'must be "wait" or "fallback"' }), 'wait'),
  QUEUE_PRIORITY_CLAIM: z.optional(
    z.string().check(z.regex(/^[\w.:-]{1,64}$/, 'must be a claim name (letters, digits, _ . : -)')),
  ),
});

/**
 * `providers`: the upper-case names of the `UPSTREAM_<NAME>` providers in use, whose own limits are read as
 * `UPSTREAM_<NAME>_MAX_CONCURRENT`, `UPSTREAM_<NAME>_RPM` and `UPSTREAM_<NAME>_TPM`.
 */
export function toQueueConfig(
  e: z.output<typeof queueEnv>,
  env: Env,
  providers: readonly string[],
  startDeadlineMs: number,
): QueueConfig {
  const capacity: Record<string, ProviderCapacity> = {};
  const main = { maxConcurrent: e.UPSTREAM_MAX_CONCURRENT, rpm: e.UPSTREAM_RPM, tpm: e.UPSTREAM_TPM };
  if (main.maxConcurrent || main.rpm || main.tpm) capacity.main = main;
  for (const name of providers) {
    const own = {
      maxConcurrent: providerLimit(env, `UPSTREAM_${name}_MAX_CONCURRENT`),
      rpm: providerLimit(env, `UPSTREAM_${name}_RPM`),
      tpm: providerLimit(env, `UPSTREAM_${name}_TPM`),
    };
    if (own.maxConcurrent || own.rpm || own.tpm) capacity[name.toLowerCase()] = own;
  }
  return {
    capacity,
    maxWaitMs: maxWait(e.QUEUE_MAX_WAIT_MS, env, startDeadlineMs),
    maxLength: e.QUEUE_MAX_LENGTH,
    prefer: e.QUEUE_PREFER,
    priorityClaim: e.QUEUE_PRIORITY_CLAIM?.trim() || undefined,
  };
}

/**
 * The wait counts toward `START_DEADLINE_MS` (the first token must come within it): a wait set longer is refused;
 * the default, when the deadline is shorter, becomes half of it, leaving the rest for the upstream.
 */
function maxWait(configured: number, env: Env, startDeadlineMs: number): number {
  if (configured < startDeadlineMs) return configured;
  if (env.QUEUE_MAX_WAIT_MS?.trim()) {
    throw invalid(
      'QUEUE_MAX_WAIT_MS',
      `must be shorter than START_DEADLINE_MS (${startDeadlineMs}): the wait counts toward it`,
    );
  }
  return Math.floor(startDeadlineMs / 2);
}

function providerLimit(env: Env, variable: string): number | undefined {
  const raw = env[variable]?.trim();
  if (!raw) return undefined;
  const parsed = optionalPositive.safeParse(raw);
  if (!parsed.success || parsed.data === undefined)
    throw invalid(variable, 'must be a whole number greater than 0');
  return parsed.data;
}
