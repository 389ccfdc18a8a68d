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
 * One reply's body, framed as it streams: pull-based (a token is read from the upstream only when the client is ready
 * for it) and platform-neutral. Each token is framed the moment it arrives, together with those already there behind
 * it (`Reply.ready`: one upstream read often carries several), and a framed token never waits for one still to come.
 * A platform sends it as a Web `ReadableStream` (`readable`), or writes it to its socket directly (the Node server:
 * server/reply-pipe.ts), which saves the web stream's steps on the path of every token. A cancel (the client gone)
 * aborts the upstream.
 */
export class ReplyBody {
  /** What goes out first, before any token (the UI stream's `start` parts). */
  readonly opening: string;
  private readonly tokens: AsyncIterator<Delta>;
  private readonly take: (() => Delta | undefined) | undefined;
  private ended = false;
  /** The stream is complete (ended or failed in its own protocol): `next` has returned its last text. */
  private closed = false;

  constructor(
    private readonly reply: Reply,
    private readonly framing: Framing,
    private readonly hooks: { abort: () => void; onEnd: (end: StreamEnd) => void },
  ) {
    this.tokens = reply.tokens[Symbol.asyncIterator]();
    this.take = reply.take;
    this.opening = framing.start();
  }

  /** Sent its last text: close the stream after it. */
  get complete(): boolean {
    return this.closed;
  }

  /**
   * The next text to send: the tokens already in, framed; with the reply's end (or its error, told in the stream)
   * after the last of them, and then `complete` is true. Undefined once nothing more will come (cancelled). Rejects
   * when the reply's reader left (the client is gone) while this was waiting.
   */
  async next(): Promise<string | undefined> {
    let text = '';
    try {
      // A call must return something or the stream waits forever: skip deltas the framing leaves out (reasoning in
      // plain text), and read on.
      while (!this.ended) {
        const next = await this.tokens.next();
        if (this.ended) return undefined;
        if (next.done)
          return this.finish(
            text + this.framing.end(this.reply.outcome.finishReason, this.reply.outcome.usage),
            { kind: 'complete' },
          );
        text += frame(this.framing, next.value);
        // Those already here too, each without a promise (`Reply.take`).
        for (let delta = this.take?.(); delta !== undefined; delta = this.take?.())
          text += frame(this.framing, delta);
        if (text && !this.reply.ready?.()) return text;
      }
      return undefined;
    } catch (caught) {
      const error = toProxyError(caught);
      if (error.code === 'client_closed_request') {
        if (this.end({ kind: 'cancelled' })) throw caught;
        return undefined;
      }
      if (this.ended) return undefined;
      return this.finish(text + this.framing.error(error.message), { kind: 'error', error });
    }
  }

  /** The client is gone: the upstream is aborted (a reader of a shared reply just leaves it). Idempotent. */
  async cancel(): Promise<void> {
    if (this.ended) return;
    this.hooks.abort();
    this.end({ kind: 'cancelled' });
    await this.tokens.return?.();
  }

  /** As a Web stream: what `Response` takes on the edge, and wherever the platform brings nothing faster. */
  readable(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        if (this.opening) controller.enqueue(encoder.encode(this.opening));
      },
      pull: async (controller) => {
        const text = await this.next();
        if (text) controller.enqueue(encoder.encode(text));
        // Nothing (cancelled, here or by another reader of this body) is an end too: a reader must not wait forever.
        if (this.closed || text === undefined) closeQuietly(controller);
      },
      cancel: () => this.cancel(),
    });
  }

  private finish(text: string, end: StreamEnd): string {
    this.closed = true;
    this.end(end);
    return text;
  }

  private end(result: StreamEnd): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.hooks.onEnd(result);
    return true;
  }
}

/** A reply on its way to its client: its body, and the headers its 200 carries. */
export interface StreamedReply {
  readonly body: ReplyBody;
  readonly headers: Record<string, string>;
}

/** Closes a stream that may already be closed or cancelled (then there is nothing to do). */
function closeQuietly(controller: ReadableStreamDefaultController<Uint8Array>): void {
  try {
    controller.close();
  } catch {
    // already closed or cancelled
  }
}

/** How a streamed reply becomes a `Response`; the platform may bring its own (`Platform.streamResponse`). */
export type StreamResponder = (
  body: ReplyBody | ReadableStream<Uint8Array>,
  init: { status: number; headers: Record<string, string> },
) => Response;

/** The Web platform's way: the body as a `ReadableStream` in a native `Response`. */
export const webStreamResponse: StreamResponder = (body, init) =>
  new Response(body instanceof ReplyBody ? body.readable() : body, init);

/** A streamed reply as its 200, in the platform's way (`responder`) or the Web platform's. */
export function streamedResponse(
  { body, headers }: StreamedReply,
  responder: StreamResponder = webStreamResponse,
): Response {
  return responder(body, { status: 200, headers });
}

function frame(framing: Framing, delta: Delta): string {
  if (typeof delta === 'string') return framing.text(delta);
  return 'reasoning' in delta ? framing.reasoning(delta.reasoning) : framing.toolCalls(delta.toolCalls);
}
