import type { ProviderCapacity } from '../config/queue';

/**
 * A slot was granted (with the minute its tokens were booked in, for `UPSTREAM_TPM`), or not yet: then `retryInMs`
 * says when one may free at the latest (a lease, a minute, or enough of the token window ends).
 */
export type Acquired =
  | { readonly granted: true; readonly window: number }
  | { readonly granted: false; readonly retryInMs: number };

/** What a stream really used, against what its slot booked: the difference goes back to (or on) the minute booked. */
export interface TokenSettlement {
  readonly window: number;
  readonly delta: number;
}

/**
 * The capacity of each upstream provider, shared by every instance on the store: streams open at once (leases that
 * expire, so a crashed instance cannot hold them), requests in the last minute, and tokens in the last minute
 * (a sliding window, booked with each request's worst case and settled to its real usage).
 */
export interface CapacityStore {
  tryAcquire(
    provider: string,
    leaseId: string,
    limits: ProviderCapacity,
    leaseMs: number,
    tokens: number,
  ): Promise<Acquired>;
  /** Keeps a stream's slot while it runs; a lease not renewed frees itself after `leaseMs`. */
  renew(provider: string, leaseId: string, leaseMs: number): Promise<void>;
  release(provider: string, leaseId: string, settlement?: TokenSettlement): Promise<void>;
  /**
   * Calls `wake` when a slot frees on any instance (pub/sub over TCP), and once when it starts listening (a slot freed
   * before then was announced to nobody). Absent: waiters poll.
   */
  watch?(provider: string, wake: () => void): () => void;
  /** Tells every instance that `provider`'s `model` said to hold off for `ms` (its rate-limit headers). */
  sharePause?(provider: string, model: string, ms: number): Promise<void>;
  /** What the instances learnt: the milliseconds left of `provider`'s `model`'s pause (0: none). */
  readPause?(provider: string, model: string): Promise<number>;
  /** Hears pauses as another instance shares them (pub/sub over TCP); without it, `readPause` is polled. */
  watchPauses?(heard: (provider: string, model: string, ms: number) => void): () => void;
}

export const MINUTE_MS = 60_000;

/**
 * The tokens booked in the last minute, as a sliding window over two fixed minutes (the previous one weighted by how
 * much of it is still inside the window), and how long until `tokens` more would fit under `tpm`.
 */
export function tokenWindow(previous: number, current: number, now: number, tokens: number, tpm: number) {
  const into = now % MINUTE_MS;
  const used = (previous * (MINUTE_MS - into)) / MINUTE_MS + current;
  if (used + tokens <= tpm) return { fits: true, retryInMs: 0 };
  let retryInMs = MINUTE_MS - into;
  // The previous minute fades linearly: if what this minute holds fits, wait only until enough of it has faded.
  if (previous > 0 && current + tokens <= tpm) {
    retryInMs = Math.min(retryInMs, Math.ceil(((used + tokens - tpm) * MINUTE_MS) / previous));
  }
  return { fits: false, retryInMs: Math.max(1, retryInMs) };
}

/** One instance's capacity, in memory. */
export function memoryCapacityStore(now: () => number): CapacityStore {
  const leases = new Map<string, Map<string, number>>();
  const starts = new Map<string, number[]>();
  const booked = new Map<string, Map<number, number>>();
  const of = <T>(map: Map<string, T>, provider: string, empty: () => T): T => {
    const known = map.get(provider);
    if (known) return known;
    const value = empty();
    map.set(provider, value);
    return value;
  };
  return {
    async tryAcquire(provider, leaseId, limits, leaseMs, tokens) {
      const at = now();
      const window = Math.floor(at / MINUTE_MS);
      const open = of(leases, provider, () => new Map<string, number>());
      for (const [id, expiresAt] of open) if (expiresAt <= at) open.delete(id);
      const recent = of(starts, provider, () => []);
      while (recent.length && (recent[0] ?? 0) <= at - MINUTE_MS) recent.shift();
      const minutes = of(booked, provider, () => new Map<number, number>());
      for (const minute of minutes.keys()) if (minute < window - 1) minutes.delete(minute);
      if (limits.maxConcurrent !== undefined && open.size >= limits.maxConcurrent) {
        return { granted: false, retryInMs: Math.max(1, Math.min(...open.values()) - at) };
      }
      if (limits.rpm !== undefined && recent.length >= limits.rpm) {
        return { granted: false, retryInMs: Math.max(1, (recent[0] ?? at) + MINUTE_MS - at) };
      }
      if (limits.tpm !== undefined) {
        const previous = minutes.get(window - 1) ?? 0;
        const { fits, retryInMs } = tokenWindow(previous, minutes.get(window) ?? 0, at, tokens, limits.tpm);
        if (!fits) return { granted: false, retryInMs };
        minutes.set(window, (minutes.get(window) ?? 0) + tokens);
      }
      open.set(leaseId, at + leaseMs);
      recent.push(at);
      return { granted: true, window };
    },
    async renew(provider, leaseId, leaseMs) {
      const open = leases.get(provider);
      if (open?.has(leaseId)) open.set(leaseId, now() + leaseMs);
    },
    async release(provider, leaseId, settlement) {
      leases.get(provider)?.delete(leaseId);
      const minutes = booked.get(provider);
      const current = settlement && minutes?.get(settlement.window);
      if (settlement && current !== undefined) minutes?.set(settlement.window, current + settlement.delta);
    },
  };
}
