import type { Verdict } from './quota';
import type { StoreGuard } from './store-guard';
import type { Amount, LimitStores } from './stores';

/** Asks one store about one request: counts it, and only if it may pass, books its worst case and stream slot. */
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

/** Callers remembered as refused; past this many, the memory starts over (it only saves a wasted booking). */
const MAX_REFUSED = 10_000;

/**
 * The shared store's two questions in one round trip. Counting the request and then booking it costs two trips to
 * Redis in a row, before the first byte goes upstream (0.3–1 ms each on a busy host, more from an edge region to
 * Upstash). So the booking is sent with the count, not after it, and undone in the background when the count
 * refuses. What that undo costs is bounded: a caller this instance has seen refused is asked one question at a
 * time again until its window resets, so a flood of refused requests books nothing (as @upstash/ratelimit's own
 * ephemeral cache does). On one connection the count goes out first and Redis runs commands in order, so a
 * refused request's booking comes after every allowed one's and never takes their budget or slot.
 */
export function sharedAsk(options: AskOptions): Ask {
  const refusedUntil = new Map<string, number>();
  const refused = (callerId: string) => {
    const until = refusedUntil.get(callerId);
    if (until === undefined) return false;
    if (until > options.now()) return true;
    refusedUntil.delete(callerId);
    return false;
  };
  const inTurn = oneAtATime(options);
  return async (stores, callerId, amount, leaseId) => {
    if (refused(callerId)) return inTurn(stores, callerId, amount, leaseId);
    const counted = stores.requests.take(callerId);
    const booked = stores.ledger.book(callerId, amount, leaseId, options.maxStreams);
    const [count, booking] = await Promise.allSettled([counted, booked]);
    const undo = () => {
      if (booking.status === 'fulfilled' && booking.value.booked) {
        const back = { tokens: -amount.tokens, micros: -amount.micros };
        options.background(stores.ledger.finish(callerId, booking.value.windows, back, leaseId));
      }
    };
    if (count.status === 'rejected') {
      undo();
      throw count.reason;
    }
    const requests = options.answered(count.value);
    if (!requests.allowed) {
      undo();
      if (refusedUntil.size >= MAX_REFUSED) refusedUntil.clear();
      refusedUntil.set(callerId, requests.resetAt);
      return { requests };
    }
    if (booking.status === 'rejected') throw booking.reason;
    return { requests, booking: options.answered(booking.value) };
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
