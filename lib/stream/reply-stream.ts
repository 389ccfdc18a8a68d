import { type ProxyError, toProxyError } from '../errors';
import type { Delta, Reply, ToolCallFragment, Usage } from '../types';

/**
 * How one wire protocol frames one reply, as the exact text to send (one per reply: a framing may keep state, such as
 * which part is open). Only the framing differs between protocols; the pumping is shared.
 */
export interface Framing {
  start(): string;
  text(delta: string): string;
  reasoning(delta: string): string;
  /** Fragments of tool calls; a framing that needs a call whole (its parsed input) keeps them until `end`. */
  toolCalls(fragments: readonly ToolCallFragment[]): string;
  end(finishReason: string | undefined, usage: Usage | undefined): string;
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
 * between the upstream and the socket), together with those already there behind it (`Reply.ready`). A cancel
 * (client gone) aborts the upstream.
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
      let text = '';
      try {
        let next = await tokens.next();
        // A pull must enqueue something or the stream waits forever: skip deltas the framing leaves out (reasoning
        // in plain text), and read on. What has already arrived (one upstream read often carries several tokens)
        // goes out as one chunk; a framed token never waits for one still to come.
        while (!ended && !next.done) {
          text += frame(framing, next.value);
          if (text && !reply.ready?.()) return send(controller, text);
          next = await tokens.next();
        }
        if (ended) return;
        send(controller, text + framing.end(reply.outcome.finishReason, reply.outcome.usage));
        controller.close();
        end({ kind: 'complete' });
      } catch (caught) {
        const error = toProxyError(caught);
        if (error.code === 'client_closed_request') {
          if (end({ kind: 'cancelled' })) controller.error(caught);
          return;
        }
        if (ended) return;
        send(controller, text + framing.error(error.message));
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

function frame(framing: Framing, delta: Delta): string {
  if (typeof delta === 'string') return framing.text(delta);
  return 'reasoning' in delta ? framing.reasoning(delta.reasoning) : framing.toolCalls(delta.toolCalls);
}
