import type { RateLimitConfig } from '../config/rate-limit';
import { briefOutage, quotaExceeded } from '../errors';
import type { Internal } from '../internal';
import { redact } from '../redact';
import type { Caller, ClientIp } from './caller-identity';
import { createCallerIdentifier } from './caller-identity';
import type { LimitStores, WindowState } from './stores';

/** How the limiter decided: a log field, and (for `fail_open`) a response header. */
export type LimitDecision = 'allowed' | 'fail_open';

export interface Admission {
  readonly caller: Caller;
  readonly decision: LimitDecision;
  /** Quota headers for the response: `X-RateLimit-*`, and the IETF `RateLimit` / `RateLimit-Policy`. */
  readonly headers: Readonly<Record<string, string>>;
  /** Why the store could not be asked (fail-open only), redacted, for the log line. */
  readonly detail?: string;
}

export interface RateLimitGate {
  /** Identifies the caller and checks its request rate and token budget. Throws a 403, 429 or 503 ProxyError. */
  admit(req: Request, verifiedCallerId?: string): Promise<Admission>;
  /** Charges real token usage once a reply has ended. Never rejects: returns an error detail for the log instead. */
  charge(caller: Caller, tokens: number): Promise<string | undefined>;
}

export interface GateOptions {
  readonly config: RateLimitConfig;
  readonly stores: LimitStores;
  readonly clientIp: ClientIp;
  /** Keeps background work (the limiter's `pending`) alive after the response on serverless platforms. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly secrets: readonly string[];
  readonly internal: Internal;
}

class StoreTimeout extends Error {
  override readonly name = 'StoreTimeout';
}

export function createRateLimitGate(options: GateOptions): RateLimitGate {
  const { config, stores, waitUntil, secrets } = options;
  const { now } = options.internal;
  const identify = createCallerIdentifier(config, options.clientIp);
  const deadline = <T>(promise: Promise<T>) => withDeadline(promise, config.redisTimeoutMs);

  return {
    async admit(req, verifiedCallerId) {
      const caller = identify(req, verifiedCallerId);
      let requests: Awaited<ReturnType<LimitStores['requests']['take']>>;
      let budget: WindowState;
      try {
        // Both calls leave together: with auto-pipelining they share one round trip to Redis.
        [requests, budget] = await deadline(
          Promise.all([stores.requests.take(caller.id), stores.budget.peek(caller.id)]),
        );
      } catch (error) {
        const detail = redact(`rate-limit store (${stores.kind}) unavailable: ${describe(error)}`, secrets);
        if (config.failMode === 'closed') {
          throw briefOutage(
            'rate_limiter_unavailable',
            'The service is busy right now. Please try again in a moment.',
            detail,
          );
        }
        return { caller, decision: 'fail_open', headers: { 'x-ratelimit-fail': 'open' }, detail };
      }
      if (requests.pending) waitUntil(requests.pending.catch(() => {}));
      const headers = quotaHeaders(config, requests, budget, now());
      if (!requests.allowed) {
        const wait = secondsUntil(requests.resetAt, now());
        const message = `You are sending messages too quickly. Please wait ${humanize(wait)} and try again.`;
        throw quotaExceeded('rate_limited', message, wait, headers);
      }
      if (budget.remaining <= 0) {
        const wait = secondsUntil(budget.resetAt, now());
        const message = `You have used up your message allowance for now. Please try again in ${humanize(wait)}.`;
        throw quotaExceeded('token_budget_exceeded', message, wait, headers);
      }
      return { caller, decision: 'allowed', headers };
    },

    async charge(caller, tokens) {
      if (tokens <= 0) return undefined;
      try {
        await deadline(stores.budget.charge(caller.id, tokens));
        return undefined;
      } catch (error) {
        return redact(`token budget charge of ${tokens} failed: ${describe(error)}`, secrets);
      }
    },
  };
}

/** `X-RateLimit-*` (request rate, reset as Unix seconds) and the IETF draft's structured `RateLimit` fields. */
function quotaHeaders(
  config: RateLimitConfig,
  requests: WindowState & { readonly allowed: boolean },
  budget: WindowState,
  now: number,
): Record<string, string> {
  const requestReset = secondsUntil(requests.resetAt, now);
  const budgetReset = secondsUntil(budget.resetAt, now);
  return {
    'x-ratelimit-limit': String(requests.limit),
    'x-ratelimit-remaining': String(requests.allowed ? requests.remaining : 0),
    'x-ratelimit-reset': String(Math.ceil(requests.resetAt / 1000)),
    'ratelimit-policy': `"requests";q=${config.requests};w=${Math.ceil(config.windowMs / 1000)}, "tokens";q=${config.tokenBudget};w=${Math.ceil(config.budgetWindowMs / 1000)}`,
    ratelimit: `"requests";r=${requests.allowed ? requests.remaining : 0};t=${requestReset}, "tokens";r=${budget.remaining};t=${budgetReset}`,
  };
}

function secondsUntil(at: number, now: number): number {
  return Math.max(1, Math.ceil((at - now) / 1000));
}

function humanize(seconds: number): string {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} minutes`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} hours`;
  return `${Math.round(seconds / 86400)} days`;
}

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeout(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
