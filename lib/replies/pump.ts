import { ProxyError, toProxyError } from '../errors';
import { countStreaming, type TrackedAbort } from '../shutdown';
import type { Produce } from '../stream/respond';
import type { Delta, Reply } from '../types';
import type { ServedReply } from '../upstream/failover';
import { recordError } from './events';
import type { LiveReply } from './live-reply';

export type { Produce };

/**
 * The leader's side: produces the reply and records every piece of it as it arrives, whoever is reading. It is not
 * tied to the leader's client (readers come and go; the owner aborts `abort` when none is left, or on a stop), and
 * resolves with the upstream's reply once it has ended, for the charge; undefined if none was produced.
 */
export async function pump(
  live: LiveReply,
  produce: Produce,
  abort: TrackedAbort,
  messageId: string,
): Promise<ServedReply | undefined> {
  let reply: ServedReply | undefined;
  try {
    reply = await countStreaming(abort, produce(abort.signal)); // a stream in flight until `dispose` below
    const { served, adapted } = reply;
    live.push({ type: 'head', head: { served, messageId, ...(adapted && { adapted }) } });
    const startedAt = Date.now();
    // `| 0`: a small integer is stored in the event itself; the difference of two `Date.now()`s, a double, would be
    // boxed as a number of its own, 16 bytes more for every token a reply keeps in memory.
    await eachDelta(reply, (delta) => live.push({ type: 'delta', delta, at: (Date.now() - startedAt) | 0 }));
    const { finishReason, usage } = reply.outcome;
    live.push({ type: 'end', ...(finishReason && { finishReason }), ...(usage && { usage }) });
  } catch (caught) {
    live.push({ type: 'error', error: recordError(stoppedOr(toProxyError(caught))) });
  } finally {
    abort.dispose();
  }
  return reply;
}

/**
 * `for await` over the reply's tokens, with those that came in the same read taken at once (`Reply.take`): one
 * promise a read instead of one a token.
 */
async function eachDelta(reply: Reply, onDelta: (delta: Delta) => void): Promise<void> {
  const tokens = reply.tokens[Symbol.asyncIterator]();
  for (let next = await tokens.next(); !next.done; next = await tokens.next()) {
    try {
      onDelta(next.value);
      for (let delta = reply.take?.(); delta !== undefined; delta = reply.take?.()) onDelta(delta);
    } catch (error) {
      // As `for await` does when its body throws: the tokens are closed, and the body's error is the one told.
      await Promise.resolve(tokens.return?.()).catch(() => {});
      throw error;
    }
  }
}

/**
 * We abort a reply only when nobody reads it any more, or someone asked to stop it; a reader still there (another
 * tab, a resumed page) then sees a clean end rather than the "client closed" that would break its stream.
 */
function stoppedOr(error: ProxyError): ProxyError {
  if (error.code !== 'client_closed_request') return error;
  return new ProxyError(499, 'reply_stopped', 'The reply was stopped.', { detail: error.detail });
}
