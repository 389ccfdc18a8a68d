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

/** What a request reserves, or what settling adds back: tokens, and USD as whole micro-dollars. */
export interface Amount {
  readonly tokens: number;
  readonly micros: number;
}

/** One budget after the reservation. */
export type BudgetState = WindowState & {
  readonly granted: boolean;
  /** The window the reservation was booked in, so settling adjusts that one even after it has rolled over. */
  readonly window: number;
};

/** The windows a reservation went into, one per budget: where settling puts the difference. */
export interface BookedWindows {
  readonly tokens: number;
  readonly spend: number;
  /** The UTC day of the deployment-wide spend cap. */
  readonly day: number;
}

/** What `book` answered: each budget after the reservation, and whether a stream slot was free. */
export interface Booking {
  readonly budget: BudgetState;
  /** The caller's spend budget (`SPEND_BUDGET_USD`); absent when it is off. */
  readonly spend?: BudgetState;
  /** The deployment's daily spend cap (`GLOBAL_SPEND_BUDGET_USD`); absent when it is off. */
  readonly globalSpend?: BudgetState;
  readonly stream: { readonly granted: boolean };
  readonly windows: BookedWindows;
  /** Everything granted: the tokens and micro-dollars are reserved and the slot is held. Otherwise nothing was booked. */
  readonly booked: boolean;
}

/**
 * What a request holds while it runs: a reservation from the caller's token budget (the worst case it can cost)
 * and a stream slot (a lease: a slot whose holder stops renewing, a crashed instance, frees itself after the
 * lease). Booking is atomic across instances and all-or-nothing, so concurrent requests can never overshoot the
 * budget or the stream cap, and a refusal leaves nothing to undo.
 */
export interface Ledger {
  book(callerId: string, amount: Amount, leaseId: string, maxStreams: number): Promise<Booking>;
  renew(callerId: string, leaseId: string): Promise<void>;
  /** Adds `delta` (real cost minus the reservation: usually negative) to the reservations and frees the slot. */
  finish(callerId: string, windows: BookedWindows, delta: Amount, leaseId: string): Promise<void>;
}

export interface LimitStores {
  /** Named in the startup line and the README: `upstash`, `redis` or `memory`. */
  readonly kind: string;
  readonly requests: RequestLimiter;
  readonly ledger: Ledger;
}

/**
 * The sliding-window estimate @upstash/ratelimit uses: the previous window's count, weighted by how much of it still
 * overlaps the sliding window, plus the current window's count. Shared so every store agrees to the token.
 */
export function slidingWindowUsed(previous: number, current: number, now: number, windowMs: number): number {
  return Math.floor(previousWeight(now, windowMs) * previous) + current;
}

/** How much of the previous window still counts: 1 at the start of a window, falling to 0 at its end. */
export function previousWeight(now: number, windowMs: number): number {
  return 1 - (now % windowMs) / windowMs;
}

/** The deployment-wide spend cap counts per UTC day: it resets at midnight UTC, whatever the traffic. */
export const DAY_MS = 86_400_000;

export function windowIndex(now: number, windowMs: number): number {
  return Math.floor(now / windowMs);
}
