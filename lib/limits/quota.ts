import type { RateLimitConfig } from '../config/rate-limit';
import { ProxyError, quotaExceeded } from '../errors';
import type { Booking, WindowState } from './stores';

/** What the stores said about one request: its request count and, if it passed that, its booking. */
export interface Verdict {
  readonly requests: WindowState & { readonly allowed: boolean; readonly pending?: Promise<unknown> };
  /** Absent when the request rate refused it: nothing else was asked. */
  readonly booking?: Booking;
}

/** `X-RateLimit-*` (request rate, reset as Unix seconds) and the IETF draft's structured `RateLimit` fields. */
export function quotaHeaders(config: RateLimitConfig, verdict: Verdict, now: number): Record<string, string> {
  const { requests, booking } = verdict;
  const requestsLeft = requests.allowed ? requests.remaining : 0;
  const tokens = booking
    ? `, "tokens";r=${booking.budget.remaining};t=${secondsUntil(booking.budget.resetAt, now)}`
    : '';
  return {
    'x-ratelimit-limit': String(requests.limit),
    'x-ratelimit-remaining': String(requestsLeft),
    'x-ratelimit-reset': String(Math.ceil(requests.resetAt / 1000)),
    'ratelimit-policy': `"requests";q=${config.requests};w=${Math.ceil(config.windowMs / 1000)}, "tokens";q=${config.tokenBudget};w=${Math.ceil(config.budgetWindowMs / 1000)}`,
    ratelimit: `"requests";r=${requestsLeft};t=${secondsUntil(requests.resetAt, now)}${tokens}`,
  };
}

/** The first limit the verdict breaks, as the 429 the caller gets; `undefined` when it breaks none. */
export function refusal(
  verdict: Verdict,
  headers: Record<string, string>,
  now: number,
): ProxyError | undefined {
  const { requests, booking } = verdict;
  if (!requests.allowed || !booking) {
    const wait = secondsUntil(requests.resetAt, now);
    const message = `You are sending messages too quickly. Please wait ${humanize(wait)} and try again.`;
    return quotaExceeded('rate_limited', message, wait, headers);
  }
  if (!booking.budget.granted) {
    const wait = secondsUntil(booking.budget.resetAt, now);
    const message = `You have used up your message allowance for now. Please try again in ${humanize(wait)}.`;
    return quotaExceeded('token_budget_exceeded', message, wait, headers);
  }
  if (booking.spend && !booking.spend.granted) {
    const wait = secondsUntil(booking.spend.resetAt, now);
    const message = `You have reached your spending limit for now. Please try again in ${humanize(wait)}.`;
    return quotaExceeded('spend_budget_exceeded', message, wait, headers);
  }
  if (booking.globalSpend && !booking.globalSpend.granted)
    return spendCapReached(booking.globalSpend, headers, now);
  if (!booking.stream.granted) {
    const message = 'You already have several replies in progress. Please wait for one to finish.';
    return quotaExceeded('too_many_streams', message, 1, headers);
  }
  return undefined;
}

/**
 * The deployment's daily spend cap (`GLOBAL_SPEND_BUDGET_USD`): not this caller's doing, so a 503 rather than a
 * 429, and the owner's problem to act on, so it is logged at `error` (as every 5xx of ours is).
 */
function spendCapReached(cap: WindowState, headers: Record<string, string>, now: number): ProxyError {
  const wait = secondsUntil(cap.resetAt, now);
  const message = `The service has reached its spending limit for today. Please try again in ${humanize(wait)}.`;
  const detail = `GLOBAL_SPEND_BUDGET_USD reached: $${(cap.limit - cap.remaining) / 1e6} of $${cap.limit / 1e6} reserved or spent today (UTC)`;
  return new ProxyError(503, 'spend_cap_reached', message, {
    headers: { ...headers, 'retry-after': String(wait) },
    detail,
  });
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
