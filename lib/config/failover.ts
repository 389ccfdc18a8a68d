import * as z from 'zod/mini';
import { type Env, httpUrl, intBetween, invalid, MODEL_NAME, positiveInt } from './env';

export interface FailoverPolicy {
  /** Attempts per route, the first included. */
  readonly maxAttempts: number;
  /** Backoff: full jitter over `retryBaseMs * 2^n`, capped at `retryMaxMs`. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Longest `retry-after` we will wait for; a longer one means: fall back now. */
  readonly retryAfterMaxMs: number;
  readonly firstTokenTimeoutMs: number;
  /** All attempts together must produce a first token within this (an edge response must start within 25 s). */
  readonly startDeadlineMs: number;
  readonly idleTimeoutMs: number;
}

export interface FallbackRoute {
  readonly model: string;
  /** `undefined`: the main upstream (OPENAI_BASE_URL + OPENAI_API_KEY); else a name from UPSTREAM_<NAME>_*. */
  readonly provider: string | undefined;
}

export interface ProviderConfig {
  readonly baseURL: string;
  readonly apiKey: string;
}

export interface FailoverConfig {
  readonly fallbacks: readonly FallbackRoute[];
  readonly providers: Readonly<Record<string, ProviderConfig>>;
  readonly fallbackMessage: string | undefined;
  readonly policy: FailoverPolicy;
  /** The whole reply, streaming included; past it the stream is stopped with a clear message. */
  readonly totalTimeoutMs: number;
}

/** Milliseconds. */
const ms = positiveInt;

export const failoverEnv = z.object({
  FALLBACK_MODELS: z.optional(z.string()),
  FALLBACK_MESSAGE: z.optional(z.string().check(z.maxLength(2_000, 'is too long (2000 characters at most)'))),
  UPSTREAM_MAX_ATTEMPTS: intBetween(1, 5, 2),
  RETRY_BASE_DELAY_MS: ms(250),
  RETRY_MAX_DELAY_MS: ms(2_000),
  RETRY_AFTER_MAX_MS: ms(5_000),
  FIRST_TOKEN_TIMEOUT_MS: ms(10_000),
  START_DEADLINE_MS: ms(20_000),
  IDLE_TIMEOUT_MS: ms(20_000),
  TOTAL_TIMEOUT_MS: ms(280_000),
});

type FailoverEnv = z.output<typeof failoverEnv>;

const ENTRY = /^([^\s,]+?)(?:@([A-Za-z][A-Za-z0-9_]*))?$/;

/**
 * `FALLBACK_MODELS` is an ordered, comma-separated list. `model` runs on the main upstream; `model@name` runs on the
 * provider defined by `UPSTREAM_<NAME>_BASE_URL` and `UPSTREAM_<NAME>_API_KEY` (keys stay in their own variables).
 */
export function toFailoverConfig(e: FailoverEnv, env: Env): FailoverConfig {
  const providers: Record<string, ProviderConfig> = {};
  const fallbacks = (e.FALLBACK_MODELS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry): FallbackRoute => {
      const match = ENTRY.exec(entry);
      const model = match?.[1];
      if (!match || !model || !MODEL_NAME.test(model)) {
        throw invalid('FALLBACK_MODELS', `entry "${entry}" must be "model" or "model@provider"`);
      }
      const name = match[2]?.toUpperCase();
      if (name && !providers[name]) providers[name] = provider(name, env);
      return { model, provider: name };
    });
  if (e.FIRST_TOKEN_TIMEOUT_MS > e.START_DEADLINE_MS) {
    throw invalid('FIRST_TOKEN_TIMEOUT_MS', 'must not exceed START_DEADLINE_MS');
  }
  return {
    fallbacks,
    providers,
    fallbackMessage: e.FALLBACK_MESSAGE?.trim() || undefined,
    totalTimeoutMs: e.TOTAL_TIMEOUT_MS,
    policy: {
      maxAttempts: e.UPSTREAM_MAX_ATTEMPTS,
      retryBaseMs: e.RETRY_BASE_DELAY_MS,
      retryMaxMs: e.RETRY_MAX_DELAY_MS,
      retryAfterMaxMs: e.RETRY_AFTER_MAX_MS,
      firstTokenTimeoutMs: e.FIRST_TOKEN_TIMEOUT_MS,
      startDeadlineMs: e.START_DEADLINE_MS,
      idleTimeoutMs: e.IDLE_TIMEOUT_MS,
    },
  };
}

function provider(name: string, env: Env): ProviderConfig {
  const urlVar = `UPSTREAM_${name}_BASE_URL`;
  const keyVar = `UPSTREAM_${name}_API_KEY`;
  const baseURL = httpUrl().safeParse(env[urlVar]?.trim());
  const apiKey = env[keyVar]?.trim();
  if (!baseURL.success) {
    throw invalid(
      urlVar,
      `must be an http(s) URL (FALLBACK_MODELS names the provider "${name.toLowerCase()}")`,
    );
  }
  if (!apiKey) throw invalid(keyVar, 'is required (use any placeholder for a server without auth)');
  return { baseURL: baseURL.data, apiKey };
}
