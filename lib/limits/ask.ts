import type { Verdict } from './quota';
import type { StoreGuard } from './store-guard';
import type { Amount, LimitStores } from './stores';

/**
 * Asks one store about one request: counts it, and books its worst case and stream slot for a request that may pass.
 * What it answers is as if it had booked only then: a refused request holds nothing once the answer is given back.
 */
export type Ask = (
  stores: LimitStores,
  callerId: string,
  amount: Amount,
  leaseId: string,
) => Promise<Verdict>;

export interface AskOptions {
  readonly maxStreams: number;
  readonly answered: StoreGuard['answered'];
  readonly now: () => number;
  /** Where the release of a booking that was not needed runs (it must not hold up the refusal). */
  readonly background: (work: Promise<unknown>) => void;
}

/** Callers remembered as refused; past this many, the expired ones go (then, if need be, all). */
const MAX_REFUSED = 10_000;

/**
 * The shared store's two questions in one round trip. Counting the request and then booking it costs two trips to
 * Redis in a row, before the first byte goes upstream (0.3–1 ms each on a busy host, more from an edge region to
 * Upstash). So the booking is sent with the count, not after it, and given back in the background when the count
 * refuses; a refusal is answered as soon as the count is in. What that costs is bounded: a caller this instance has
 * seen refused is asked one question at a time again until its window resets, so a flood of refused requests books
 * nothing (as @upstash/ratelimit's own ephemeral cache does). Meanwhile a refused request's booking holds its
 * reservation for a round trip or two: its own caller's tokens and slot, and its share of the deployment's daily
 * spend cap, which near that cap can refuse someone else's request for that moment. On one connection the count is
 * sent first and Redis runs commands in order, so within an instance it never takes an earlier admitted one's slot.
 */
export function sharedAsk(options: AskOptions): Ask {
  const refused = refusedCallers(options.now);
  const inTurn = oneAtATime(options);
  return async (stores, callerId, amount, leaseId) => {
    if (refused.has(callerId)) return inTurn(stores, callerId, amount, leaseId);
    const counted = stores.requests.take(callerId);
    const booked = stores.ledger.book(callerId, amount, leaseId, options.maxStreams);
    booked.catch(() => {}); // when the count decides alone, a failed booking is nobody's error
    const giveBack = () => {
      const back = { tokens: -amount.tokens, micros: -amount.micros };
      const undone = booked.then(async (b) => {
        if (b.booked) await stores.ledger.finish(callerId, b.windows, back, leaseId);
      });
      options.background(undone.catch(() => {}));
    };
    let requests: Verdict['requests'];
    try {
      requests = options.answered(await counted);
    } catch (error) {
      giveBack();
      throw error;
    }
    if (!requests.allowed) {
      giveBack();
      refused.add(callerId, requests.resetAt);
      return { requests };
    }
    return { requests, booking: options.answered(await booked) };
  };
}

/** Callers refused until a time: forgotten when it passes, and the expired ones first when there are too many. */
export function refusedCallers(now: () => number) {
  const until = new Map<string, number>();
  return {
    has(callerId: string): boolean {
      const at = until.get(callerId);
      if (at === undefined) return false;
      if (at > now()) return true;
      until.delete(callerId);
      return false;
    },
    add(callerId: string, resetAt: number): void {
      if (until.size >= MAX_REFUSED) {
        const t = now();
        for (const [id, at] of until) if (at <= t) until.delete(id);
        if (until.size >= MAX_REFUSED) until.clear();
      }
      until.set(callerId, resetAt);
    },
  };
}

/** Counts the request; only if it may pass, books it (a refusal leaves nothing to undo): two round trips. */
export function oneAtATime(options: Pick<AskOptions, 'maxStreams' | 'answered'>): Ask {
  return async (stores, callerId, amount, leaseId) => {
    const requests = options.answered(await stores.requests.take(callerId));
    if (!requests.allowed) return { requests };
    const booking = options.answered(await stores.ledger.book(callerId, amount, leaseId, options.maxStreams));
    return { requests, booking };
  };
}
