import type { ProviderCapacity } from '../config/queue';

/** A slot was granted, or not yet: then `retryInMs` says when one may free at the latest (a lease or a minute ends). */
export type Acquired = { readonly granted: true } | { readonly granted: false; readonly retryInMs: number };

/**
 * The capacity of each upstream provider, shared by every instance on the store: streams open at once (leases that
 * expire, so a crashed instance cannot hold them) and requests in the last minute.
 */
export interface CapacityStore {
  tryAcquire(provider: string, leaseId: string, limits: ProviderCapacity, leaseMs: number): Promise<Acquired>;
  /** Keeps a stream's slot while it runs; a lease not renewed frees itself after `leaseMs`. */
  renew(provider: string, leaseId: string, leaseMs: number): Promise<void>;
  release(provider: string, leaseId: string): Promise<void>;
  /** Calls `wake` when a slot frees on any instance (pub/sub over TCP). Absent: waiters poll. */
  watch?(provider: string, wake: () => void): () => void;
}

const MINUTE_MS = 60_000;

/** One instance's capacity, in memory. */
export function memoryCapacityStore(now: () => number): CapacityStore {
  const leases = new Map<string, Map<string, number>>();
  const starts = new Map<string, number[]>();
  const of = <T>(map: Map<string, T>, provider: string, empty: () => T): T => {
    const known = map.get(provider);
    if (known) return known;
    const value = empty();
    map.set(provider, value);
    return value;
  };
  return {
    async tryAcquire(provider, leaseId, limits, leaseMs) {
      const at = now();
      const open = of(leases, provider, () => new Map<string, number>());
      for (const [id, expiresAt] of open) if (expiresAt <= at) open.delete(id);
      const recent = of(starts, provider, () => []);
      while (recent.length && (recent[0] ?? 0) <= at - MINUTE_MS) recent.shift();
      if (limits.maxConcurrent !== undefined && open.size >= limits.maxConcurrent) {
        return { granted: false, retryInMs: Math.max(1, Math.min(...open.values()) - at) };
      }
      if (limits.rpm !== undefined && recent.length >= limits.rpm) {
        return { granted: false, retryInMs: Math.max(1, (recent[0] ?? at) + MINUTE_MS - at) };
      }
      open.set(leaseId, at + leaseMs);
      recent.push(at);
      return { granted: true };
    },
    async renew(provider, leaseId, leaseMs) {
      const open = leases.get(provider);
      if (open?.has(leaseId)) open.set(leaseId, now() + leaseMs);
    },
    async release(provider, leaseId) {
      leases.get(provider)?.delete(leaseId);
    },
  };
}
