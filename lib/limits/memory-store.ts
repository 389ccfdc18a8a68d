import { type LimitStores, slidingWindowUsed, windowIndex } from './stores';

interface Windows {
  readonly requests: number;
  readonly windowMs: number;
  readonly tokenBudget: number;
  readonly budgetWindowMs: number;
}

/**
 * In-process stores with the same semantics as the Redis ones, for local development (and a deliberately
 * single-instance server). The clock is injected so tests can move time instead of sleeping.
 */
export function memoryLimitStores(windows: Windows, now: () => number): LimitStores {
  const requestCounts = new SlidingCounts(windows.windowMs);
  const tokenCounts = new SlidingCounts(windows.budgetWindowMs);
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
        requestCounts.add(callerId, t, 1);
        return { allowed: true, limit: windows.requests, remaining: windows.requests - used - 1, resetAt };
      },
    },
    budget: {
      async peek(callerId) {
        const t = now();
        const remaining = Math.max(0, windows.tokenBudget - tokenCounts.used(callerId, t));
        const resetAt = (windowIndex(t, windows.budgetWindowMs) + 1) * windows.budgetWindowMs;
        return { limit: windows.tokenBudget, remaining, resetAt };
      },
      async charge(callerId, tokens) {
        tokenCounts.add(callerId, now(), tokens);
      },
    },
  };
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

  add(id: string, t: number, amount: number): void {
    const key = `${id}:${windowIndex(t, this.windowMs)}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + amount);
    this.sweep(t);
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
