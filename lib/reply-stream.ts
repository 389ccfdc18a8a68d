import { type ProxyError, toProxyError } from './errors';
import type { Reply } from './upstream';

/** How one wire protocol frames a reply. Only the framing differs between protocols; the pumping is shared. */
export interface Framing<T> {
  start(): T[];
  delta(text: string): T;
  end(finishReason: string | undefined): T[];
  /** Once the status is 200 an error can only be told inside the stream, and the stream must still end cleanly. */
  error(message: string): T[];
}

export type StreamEnd =
  | { readonly kind: 'complete' }
  | { readonly kind: 'error'; readonly error: ProxyError }
  | { readonly kind: 'cancelled' };

/**
 * Turns a reply into a pull-based stream: a token is read from the upstream only when the client is ready for it,
 * and each one is enqueued the moment it arrives (no buffering). A cancel (client gone) aborts the upstream.
 */
export function replyStream<T>(
  reply: Reply,
  framing: Framing<T>,
  hooks: { abort: () => void; onEnd: (end: StreamEnd) => void },
): ReadableStream<T> {
  const tokens = reply.tokens[Symbol.asyncIterator]();
  let ended = false;
  const end = (result: StreamEnd) => {
    if (ended) return false;
    ended = true;
    hooks.onEnd(result);
    return true;
  };

  return new ReadableStream<T>({
    start(controller) {
      for (const chunk of framing.start()) controller.enqueue(chunk);
    },
    async pull(controller) {
      try {
        const next = await tokens.next();
        if (ended) return;
        if (!next.done) {
          controller.enqueue(framing.delta(next.value));
          return;
        }
        for (const chunk of framing.end(reply.outcome.finishReason)) controller.enqueue(chunk);
        controller.close();
        end({ kind: 'complete' });
      } catch (caught) {
        const error = toProxyError(caught);
        if (error.code === 'client_closed_request') {
          if (end({ kind: 'cancelled' })) controller.error(caught);
          return;
        }
        if (ended) return;
        for (const chunk of framing.error(error.message)) controller.enqueue(chunk);
        controller.close();
        end({ kind: 'error', error });
      }
    },
    async cancel() {
      hooks.abort();
      end({ kind: 'cancelled' });
      await tokens.return?.();
    },
  });
}
