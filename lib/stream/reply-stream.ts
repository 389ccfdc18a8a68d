import { type ProxyError, toProxyError } from '../errors';
import type { Reply } from '../types';

/**
 * How one wire protocol frames a reply, as the exact text to send. Only the framing differs between protocols; the
 * pumping is shared.
 */
export interface Framing {
  start(): string;
  delta(text: string): string;
  end(finishReason: string | undefined): string;
  /** Once the status is 200 an error can only be told inside the stream, and the stream must still end cleanly. */
  error(message: string): string;
}

export type StreamEnd =
  | { readonly kind: 'complete' }
  | { readonly kind: 'error'; readonly error: ProxyError }
  | { readonly kind: 'cancelled' };

const encoder = new TextEncoder();

/**
 * Turns a reply into a pull-based byte stream: a token is read from the upstream only when the client is ready for
 * it, and each one is framed, encoded and enqueued the moment it arrives (no buffering, and no extra stream stages
 * between the upstream and the socket). A cancel (client gone) aborts the upstream.
 */
export function replyStream(
  reply: Reply,
  framing: Framing,
  hooks: { abort: () => void; onEnd: (end: StreamEnd) => void },
): ReadableStream<Uint8Array> {
  const tokens = reply.tokens[Symbol.asyncIterator]();
  let ended = false;
  const end = (result: StreamEnd) => {
    if (ended) return false;
    ended = true;
    hooks.onEnd(result);
    return true;
  };
  const send = (controller: ReadableStreamDefaultController<Uint8Array>, text: string) => {
    if (text) controller.enqueue(encoder.encode(text));
  };

  return new ReadableStream<Uint8Array>({
    start(controller) {
      send(controller, framing.start());
    },
    async pull(controller) {
      try {
        const next = await tokens.next();
        if (ended) return;
        if (!next.done) {
          send(controller, framing.delta(next.value));
          return;
        }
        send(controller, framing.end(reply.outcome.finishReason));
        controller.close();
        end({ kind: 'complete' });
      } catch (caught) {
        const error = toProxyError(caught);
        if (error.code === 'client_closed_request') {
          if (end({ kind: 'cancelled' })) controller.error(caught);
          return;
        }
        if (ended) return;
        send(controller, framing.error(error.message));
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
