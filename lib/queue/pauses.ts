import type { CapacityStore } from './capacity-store';

/** What the providers said about holding off, by provider and model (OpenAI's limits are per model). */
export interface Pauses {
  /**
   * Milliseconds before `provider`'s `model` may be sent anything; 0 or less: go. A promise only when it must first
   * read what the other instances learnt (Upstash REST, at most once a second per model).
   */
  left(provider: string, model: string): number | Promise<number>;
  /** An answer said to hold off for `ms`: pause here, and tell the other instances. */
  learn(provider: string, model: string, ms: number): void;
}

/** Without pub/sub (Upstash REST), what the other instances learnt is read at most this often per model. */
const READ_EVERY_MS = 1_000;
/** A pause barely longer than the one already known is not worth a write to the store. */
const SHARE_SLACK_MS = 250;

/**
 * Pauses learnt by any instance. Each instance keeps what it knows in memory (the hot path reads only that); a new
 * pause is written to the store and, over TCP, published to every instance at once (each listens from the start).
 * Over Upstash REST, with no pub/sub, a request reads it first if this instance has not in the last second, so a
 * pause learnt elsewhere reaches the others within about a second (one read a second per model, not per request).
 */
export function createPauses(store: CapacityStore, now: () => number): Pauses {
  const until = new Map<string, number>();
  const readAt = new Map<string, number>();
  const extend = (at: string, ms: number) => {
    const end = now() + ms;
    if (end <= (until.get(at) ?? 0)) return false;
    until.set(at, end);
    return true;
  };
  store.watchPauses?.((provider, model, ms) => extend(`${provider} ${model}`, ms));
  const known = (at: string) => (until.get(at) ?? 0) - now();
  // Requests arriving while a read is on its way wait for that read rather than go ahead unaware.
  const reading = new Map<string, Promise<number>>();
  const read = (provider: string, model: string, at: string) => {
    const pending = reading.get(at);
    if (pending) return pending;
    readAt.set(at, now());
    const done = (store.readPause?.(provider, model) ?? Promise.resolve(0))
      .catch(() => 0)
      .then((ms) => {
        reading.delete(at);
        if (ms > 0) extend(at, ms);
        return known(at);
      });
    reading.set(at, done);
    return done;
  };
  return {
    left(provider, model) {
      const at = `${provider} ${model}`;
      const stale =
        store.readPause && !store.watchPauses && now() - (readAt.get(at) ?? -Infinity) >= READ_EVERY_MS;
      return stale || reading.has(at) ? read(provider, model, at) : known(at);
    },
    learn(provider, model, ms) {
      const at = `${provider} ${model}`;
      const before = known(at);
      if (!extend(at, ms) || ms - before < SHARE_SLACK_MS) return;
      void store.sharePause?.(provider, model, ms).catch(() => {});
    },
  };
}
