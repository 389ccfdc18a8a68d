/** A sliding-window count: how much of `limit` is left, and when the current window ends (ms since epoch). */
export interface WindowState {
  readonly limit: number;
  readonly remaining: number;
  readonly resetAt: number;
}

/** Counts requests per caller. `take` is atomic across every instance sharing the store. */
export interface RequestLimiter {
  take(
    callerId: string,
  ): Promise<WindowState & { readonly allowed: boolean; readonly pending?: Promise<unknown> }>;
}

/** Tokens per caller: checked before a request, charged with the real usage after it. */
export interface TokenBudget {
  peek(callerId: string): Promise<WindowState>;
  charge(callerId: string, tokens: number): Promise<void>;
}

export interface LimitStores {
  /** Named in the startup line and the README: `upstash`, `redis` or `memory`. */
  readonly kind: string;
  readonly requests: RequestLimiter;
  readonly budget: TokenBudget;
}

/**
 * The sliding-window estimate @upstash/ratelimit uses: the previous window's count, weighted by how much of it still
 * overlaps the sliding window, plus the current window's count. Shared so every store agrees to the token.
 */
export function slidingWindowUsed(previous: number, current: number, now: number, windowMs: number): number {
  const elapsed = (now % windowMs) / windowMs;
  return Math.floor((1 - elapsed) * previous) + current;
}

export function windowIndex(now: number, windowMs: number): number {
  return Math.floor(now / windowMs);
}
