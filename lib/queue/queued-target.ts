import type { Delta, QueueTicket, Reply } from '../types';
import type { UpstreamTarget } from '../upstream/target';
import type { Slot, UpstreamQueue } from './upstream-queue';

/**
 * A request that came without a ticket (a test or a tool calling the upstream directly): one anonymous caller. A new
 * ticket each time: the queue keeps a ticket's wait budget, which must not be shared by unrelated requests.
 */
const anonymous = (): QueueTicket => ({ callerId: 'anonymous', priority: 0, tokens: 0 });

/**
 * A target that first waits its turn for its provider's capacity, and holds the slot for as long as its stream runs:
 * until the last token, a failure, or an abort (a stream nobody reads to its end still gives its slot back). At the
 * end, the tokens it really used settle what it booked from the provider's `UPSTREAM_TPM`.
 */
export function queuedTarget(target: UpstreamTarget, queue: UpstreamQueue): UpstreamTarget {
  return {
    provider: target.provider,
    async open(request, model, signal, attempt) {
      const ticket = request.ticket ?? anonymous();
      const slot = await queue.acquire(target.provider, model, ticket, signal, attempt.mayFallBack);
      // Nothing held: the reply streams through untouched (no extra step per token).
      if (!slot.held) return target.open(request, model, signal, attempt);
      const release = () => slot.release();
      signal.addEventListener('abort', release, { once: true });
      try {
        const reply = await target.open(request, model, signal, attempt);
        const done = () => signal.removeEventListener('abort', release);
        return Object.assign({}, reply, { tokens: holding(reply, slot, done) }); // not a spread: see respond.ts
      } catch (error) {
        signal.removeEventListener('abort', release);
        // Refused before a token: the provider generated nothing, so nothing of the booking was used.
        slot.release(0);
        throw error;
      }
    },
  };
}

async function* holding(reply: Reply, slot: Slot, done: () => void): AsyncGenerator<Delta> {
  try {
    yield* reply.tokens;
  } finally {
    done();
    // A stream cut before its usage keeps its whole booking: what it used is not known, and may be all of it.
    slot.release(reply.outcome.usage?.totalTokens);
  }
}
