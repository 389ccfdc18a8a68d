import type { Delta } from '../types';
import type { UpstreamTarget } from '../upstream/target';
import type { Slot, UpstreamQueue } from './upstream-queue';

/**
 * A target that first waits its turn for its provider's capacity, and holds the slot for as long as its stream runs:
 * until the last token, a failure, or an abort (a stream nobody reads to its end still gives its slot back).
 */
export function queuedTarget(target: UpstreamTarget, queue: UpstreamQueue): UpstreamTarget {
  return {
    provider: target.provider,
    async open(request, model, signal, timeouts) {
      const slot = await queue.acquire(target.provider, model, request.callerId ?? 'anonymous', signal);
      // Nothing held: the reply streams through untouched (no extra step per token).
      if (!slot.held) return target.open(request, model, signal, timeouts);
      const release = () => slot.release();
      signal.addEventListener('abort', release, { once: true });
      try {
        const reply = await target.open(request, model, signal, timeouts);
        return {
          ...reply,
          tokens: holding(reply.tokens, slot, () => signal.removeEventListener('abort', release)),
        };
      } catch (error) {
        signal.removeEventListener('abort', release);
        slot.release();
        throw error;
      }
    },
  };
}

async function* holding(tokens: AsyncIterable<Delta>, slot: Slot, done: () => void): AsyncGenerator<Delta> {
  try {
    yield* tokens;
  } finally {
    done();
    slot.release();
  }
}
