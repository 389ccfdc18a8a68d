/**
 * The clock, the randomness and the id source, in one place (in the spirit of the ai SDK's `_internal`). Production
 * uses the defaults; tests pass their own through the platform's `_internal` to move time or fix jitter instead of
 * sleeping and measuring. Only the modules whose tests need them take them: the handler, the failover and the stores.
 */
export interface Internal {
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** In [0, 1): the retry backoff's jitter. */
  readonly random: () => number;
  readonly newId: () => string;
}

export const defaultInternal: Internal = {
  now: Date.now,
  random: Math.random,
  newId: () => crypto.randomUUID(),
};

export function internalWith(overrides: Partial<Internal> | undefined): Internal {
  return overrides ? { ...defaultInternal, ...overrides } : defaultInternal;
}
