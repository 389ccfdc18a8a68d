/** The shared store did not answer in time, or failed: the gate decides what that means (local, open, closed). */
export class StoreUnavailable extends Error {
  override readonly name = 'StoreUnavailable';
}

export interface StoreGuard {
  /**
   * Runs one store call. Rejects with StoreUnavailable when the store fails, or when it stays silent for
   * `timeoutMs`; never merely because this process was too busy to read an answer that had already arrived.
   */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** Counts one answer from the store: evidence, for every call still waiting, that the store is alive. */
  answered<T>(value: T): T;
}

export interface GuardOptions {
  readonly timeoutMs: number;
  /** After a failure, calls are skipped for this long, so an outage costs each request nothing but a branch. */
  readonly breakMs: number;
  readonly now: () => number;
}

/** A store that keeps answering other calls is alive; we wait for ours at most this many timeouts in all. */
const CONGESTED_MS = 15;
const COLD_START_PATIENCE = 3;
const MAX_PATIENCE = 20;

/**
 * A deadline that tells a slow store from a busy event loop. A plain timer cannot: under a burst, this process may
 * take seconds to get around to a reply that Redis sent in microseconds, and the timer fires first (issue #9 saw
 * 1,000 concurrent requests turn the limiter off that way). So when the timer fires we look for evidence before
 * calling it an outage: if the timer itself fired late, this process is congested and the answer may be waiting
 * unread; if another call of ours was answered since this one left, the store is alive. Either way we wait on
 * (up to MAX_PATIENCE timeouts). Otherwise we give the event loop one more turn to read what is already on the
 * socket, and only then give up.
 */
export function createStoreGuard(options: GuardOptions): StoreGuard {
  let answers = 0;
  let brokenUntil = Number.NEGATIVE_INFINITY;
  let congestedAt = Number.NEGATIVE_INFINITY;
  const { timeoutMs } = options;
  // A timer normally fires within a millisecond or two; 15 ms late means the loop was blocked that long.
  let failedOnce = false;
  const trip = () => {
    failedOnce = true;
    brokenUntil = options.now() + options.breakMs;
  };

  return {
    answered(value) {
      answers++;
      return value;
    },
    run<T>(call: () => Promise<T>): Promise<T> {
      if (options.now() < brokenUntil) {
        return Promise.reject(new StoreUnavailable('skipped: the store failed moments ago'));
      }
      const answersAtStart = answers;
      return new Promise<T>((resolve, reject) => {
        let done = false;
        let patience = MAX_PATIENCE;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const fail = (message: string) => {
          done = true;
          trip();
          reject(new StoreUnavailable(message));
        };
        const arm = (ms: number, lastChance: boolean) => {
          const armedAt = performance.now();
          timer = setTimeout(() => expire(performance.now() - armedAt - ms, lastChance), ms);
        };
        const expire = (lateMs: number, lastChance: boolean) => {
          if (done) return;
          // Any timer of ours that fired late lately means this process is congested, not only this one.
          if (lateMs > CONGESTED_MS) congestedAt = performance.now();
          const congested = performance.now() - congestedAt < timeoutMs;
          // Until the store has answered once (a cold start: connecting, loading scripts) there is no evidence
          // either way, so a few timeouts of grace; none once it has failed.
          const starting = answers === 0 && !failedOnce && patience > MAX_PATIENCE - COLD_START_PATIENCE;
          if ((congested || starting || answers > answersAtStart) && --patience > 0) arm(timeoutMs, false);
          else if (!lastChance) arm(0, true);
          else fail(`no answer within ${timeoutMs} ms`);
        };
        arm(timeoutMs, false);
        call().then(
          (value) => {
            answers++;
            if (done) return;
            done = true;
            clearTimeout(timer);
            resolve(value);
          },
          (error: unknown) => {
            clearTimeout(timer);
            if (!done) fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
          },
        );
      });
    },
  };
}

/** How long a store client may wait for one answer: the guard decides sooner, unless this process is congested. */
export const STORE_CALL_LIMIT_FACTOR = MAX_PATIENCE;
