import type { SpendLimits } from '../config/rate-limit';
import {
  type BudgetState,
  DAY_MS,
  type Ledger,
  type LimitStores,
  slidingWindowUsed,
  windowIndex,
} from './stores';

export interface Windows {
  readonly requests: number;
  readonly windowMs: number;
  readonly tokenBudget: number;
  readonly budgetWindowMs: number;
  /** How long a stream slot lives unless renewed. */
  readonly streamLeaseMs: number;
  /** Spend limits in micro-dollars; absent or 0: off. */
  readonly spend?: SpendLimits;
}

const NO_SPEND: SpendLimits = { budgetMicros: 0, windowMs: DAY_MS, globalDailyMicros: 0 };
/** The one counter of the deployment-wide cap (caller ids always have a `kind:` prefix, so none can be this). */
const EVERYONE = '*';

/**
 * In-process stores with the same semantics as the Redis ones: for local development, a deliberately
 * single-instance server, and the local fallback every instance keeps for when the shared store is unreachable.
 * The clock is injected so tests can move time instead of sleeping.
 */
export function memoryLimitStores(windows: Windows, now: () => number): LimitStores {
  const requestCounts = new SlidingCounts(windows.windowMs);
  return {
    kind: 'memory',
    requests: {
      async take(callerId) {
        const t = now();
        const used = requestCounts.used(callerId, t);
        const resetAt = (windowIndex(t, windows.windowMs) + 1) * windows.windowMs;
        // Like @upstash/ratelimit: check first, and a refused request is not counted.
        if (used >= windows.requests)
          return { allowed: false, limit: windows.requests, remaining: 0, resetAt };
        requestCounts.add(callerId, windowIndex(t, windows.windowMs), 1, t);
        return { allowed: true, limit: windows.requests, remaining: windows.requests - used - 1, resetAt };
      },
    },
    ledger: memoryLedger(windows, now),
  };
}

function memoryLedger(windows: Windows, now: () => number): Ledger {
  const spend = windows.spend ?? NO_SPEND;
  const tokens = budget(windows.tokenBudget, windows.budgetWindowMs, true);
  const micros = budget(spend.budgetMicros, spend.windowMs, true);
  const global = budget(spend.globalDailyMicros, DAY_MS, false);
  const slots = new Leases(windows.streamLeaseMs, now);
  return {
    async book(callerId, amount, leaseId, maxStreams) {
      const t = now();
      const checks = {
        budget: tokens.check(callerId, amount.tokens, t),
        spend: micros.check(callerId, amount.micros, t),
        globalSpend: global.check(EVERYONE, amount.micros, t),
      };
      const budgetsOk = checks.budget.ok && checks.spend.ok && checks.globalSpend.ok;
      const streamOk = budgetsOk && slots.count(callerId) < maxStreams;
      const booked = budgetsOk && streamOk;
      if (booked) {
        tokens.add(callerId, checks.budget.window, amount.tokens, t);
        micros.add(callerId, checks.spend.window, amount.micros, t);
        global.add(EVERYONE, checks.globalSpend.window, amount.micros, t);
        slots.take(callerId, leaseId);
      }
      const bookedIn = {
        tokens: checks.budget.window,
        spend: checks.spend.window,
        day: checks.globalSpend.window,
      };
      // Not spreads followed by properties, which Node 20 builds on a slow path (see lib/stream/respond.ts).
      return Object.assign(
        { budget: checks.budget.state(booked) },
        micros.on ? { spend: checks.spend.state(booked) } : undefined,
        global.on ? { globalSpend: checks.globalSpend.state(booked) } : undefined,
        { stream: { granted: streamOk }, windows: bookedIn, booked },
      );
    },
    async renew(callerId, leaseId) {
      slots.renew(callerId, leaseId);
    },
    async finish(callerId, booked, delta, leaseId) {
      tokens.adjust(callerId, booked.tokens, delta.tokens);
      micros.adjust(callerId, booked.spend, delta.micros);
      global.adjust(EVERYONE, booked.day, delta.micros);
      slots.release(callerId, leaseId);
    },
  };
}

/**
 * One budget: a sliding window per caller (tokens, spend), or a fixed one (the daily cap resets at midnight UTC).
 * A budget with limit 0 is off: it grants everything and counts nothing.
 */
function budget(limit: number, windowMs: number, sliding: boolean) {
  const counts = new SlidingCounts(windowMs);
  const on = limit > 0;
  return {
    on,
    add(id: string, window: number, amount: number, t: number) {
      if (on) counts.add(id, window, amount, t);
    },
    adjust(id: string, window: number, delta: number) {
      if (on) counts.adjust(id, window, delta);
    },
    check(id: string, amount: number, t: number) {
      const window = windowIndex(t, windowMs);
      const used = !on ? 0 : sliding ? counts.used(id, t) : counts.current(id, t);
      const ok = !on || used + amount <= limit;
      const state = (booked: boolean): BudgetState => ({
        granted: ok,
        window,
        limit,
        remaining: Math.max(0, limit - used - (booked ? amount : 0)),
        resetAt: (window + 1) * windowMs,
      });
      return { ok, window, state };
    },
  };
}

/**
 * Stream slots per caller, each with an expiry. Each caller's leases are kept in the order they expire (every lease
 * runs `leaseMs` from its last booking: taken or renewed, it moves to the end), so a count drops the expired ones
 * from the front and stops at the first live one, instead of visiting every lease the caller holds: with 1,000
 * streams from one address (an office behind one NAT, the bench) that was 1,000 steps for each new request.
 */
class Leases {
  private readonly held = new Map<string, Map<string, number>>();

  constructor(
    private readonly leaseMs: number,
    private readonly now: () => number,
  ) {}

  count(callerId: string): number {
    const leases = this.held.get(callerId);
    if (!leases) return 0;
    const t = this.now();
    for (const [id, expiresAt] of leases) {
      if (expiresAt > t) break;
      leases.delete(id);
    }
    return leases.size;
  }

  take(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId) ?? new Map<string, number>();
    this.book(leases, leaseId);
    this.held.set(callerId, leases);
  }

  renew(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId);
    if (leases?.has(leaseId)) this.book(leases, leaseId);
  }

  release(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId);
    leases?.delete(leaseId);
    if (leases?.size === 0) this.held.delete(callerId);
  }

  /** Deleted first: a `Map` keeps a key where it was first set, and this one now expires last. */
  private book(leases: Map<string, number>, leaseId: string): void {
    leases.delete(leaseId);
    leases.set(leaseId, this.now() + this.leaseMs);
  }
}

class SlidingCounts {
  private readonly counts = new Map<string, number>();
  private sweptAt = 0;

  constructor(private readonly windowMs: number) {}

  used(id: string, t: number): number {
    const index = windowIndex(t, this.windowMs);
    const previous = this.counts.get(`${id}:${index - 1}`) ?? 0;
    const current = this.counts.get(`${id}:${index}`) ?? 0;
    return slidingWindowUsed(previous, current, t, this.windowMs);
  }

  /** The current window alone: for a fixed window, such as the UTC day. */
  current(id: string, t: number): number {
    return this.counts.get(`${id}:${windowIndex(t, this.windowMs)}`) ?? 0;
  }

  add(id: string, window: number, amount: number, t: number): void {
    if (amount === 0) return; // nothing to count (a budget that is off): keep no entry for it
    const key = `${id}:${window}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + amount);
    this.sweep(t);
  }

  /** Settles into a window only while it still counts: a forgotten window must not come back as a credit. */
  adjust(id: string, window: number, amount: number): void {
    const key = `${id}:${window}`;
    const value = this.counts.get(key);
    if (value !== undefined) this.counts.set(key, Math.max(0, value + amount));
  }

  /** Forgets windows that can no longer count, so memory stays bounded by the number of active callers. */
  private sweep(t: number): void {
    if (t - this.sweptAt < this.windowMs) return;
    this.sweptAt = t;
    const oldest = windowIndex(t, this.windowMs) - 1;
    for (const key of this.counts.keys()) {
      if (Number(key.slice(key.lastIndexOf(':') + 1)) < oldest) this.counts.delete(key);
    }
  }
}
