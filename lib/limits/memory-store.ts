import { type Ledger, type LimitStores, slidingWindowUsed, windowIndex } from './stores';

export interface Windows {
  readonly requests: number;
  readonly windowMs: number;
  readonly tokenBudget: number;
  readonly budgetWindowMs: number;
  /** How long a stream slot lives unless renewed. */
  readonly streamLeaseMs: number;
}

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
  const tokens = new SlidingCounts(windows.budgetWindowMs);
  const slots = new Leases(windows.streamLeaseMs, now);
  const { tokenBudget: limit, budgetWindowMs: windowMs } = windows;
  return {
    async book(callerId, cost, leaseId, maxStreams) {
      const t = now();
      const window = windowIndex(t, windowMs);
      const used = tokens.used(callerId, t);
      const budgetOk = used + cost <= limit;
      const streamOk = budgetOk && slots.count(callerId) < maxStreams;
      if (budgetOk && streamOk) {
        tokens.add(callerId, window, cost, t);
        slots.take(callerId, leaseId);
      }
      const booked = budgetOk && streamOk;
      const remaining = Math.max(0, limit - used - (booked ? cost : 0));
      const budget = { granted: budgetOk, window, limit, remaining, resetAt: (window + 1) * windowMs };
      return { budget, stream: { granted: streamOk }, booked };
    },
    async renew(callerId, leaseId) {
      slots.renew(callerId, leaseId);
    },
    async finish(callerId, window, delta, leaseId) {
      tokens.adjust(callerId, window, delta);
      slots.release(callerId, leaseId);
    },
  };
}

/** Stream slots per caller, each with an expiry. */
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
    for (const [id, expiresAt] of leases) if (expiresAt <= t) leases.delete(id);
    return leases.size;
  }

  take(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId) ?? new Map<string, number>();
    leases.set(leaseId, this.now() + this.leaseMs);
    this.held.set(callerId, leases);
  }

  renew(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId);
    if (leases?.has(leaseId)) leases.set(leaseId, this.now() + this.leaseMs);
  }

  release(callerId: string, leaseId: string): void {
    const leases = this.held.get(callerId);
    leases?.delete(leaseId);
    if (leases?.size === 0) this.held.delete(callerId);
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

  add(id: string, window: number, amount: number, t: number): void {
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
