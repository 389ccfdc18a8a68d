import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FastResponse } from 'srvx';
import { ReplyBody, type StreamResponder } from '../lib/stream/reply-stream';

/**
 * Streamed replies on the Node server: srvx's `Response` class (its adapter writes the headers as given instead of the
 * native class validating them first), with a reply's body written straight to the socket. srvx hands a body that
 * has a `pipe` method the response to write to. Against the Web `ReadableStream` srvx would read chunk by chunk, this
 * drops several promise steps and the web stream's machinery from the path of every token: -9% main-thread
 * instructions per request (`npm run bench:instructions`).
 */
export const nodeStreamResponse: StreamResponder = (body, init) =>
  body instanceof ReplyBody ? new ReplyResponse(body, init) : new FastResponse(body, init);

/**
 * A reply as srvx's `Response`. What srvx writes to the socket is the body's `pipe`; anything that reads the response
 * as a Web `Response` instead (a test, a framework embedding the handler) gets the body as a Web stream, so that a
 * cancel there cancels the reply. (srvx's own fallback would pipe into a Node stream read through an async iterator,
 * whose `return` waits for a pending read: a reply with no token coming would never hear the cancel.)
 */
export class ReplyResponse extends FastResponse {
  readonly #reply: ReplyBody | undefined;
  readonly #init: ResponseInit | undefined;
  /** Its Web side, once anything read it: from then on, the one reader of the body (srvx then pipes this). */
  readonly #web: { response?: Response };

  /** Any other body makes it srvx's class as it is (what a copy of a response in its own class would pass). */
  constructor(body?: ReplyBody | BodyInit | null, init?: ResponseInit) {
    const reply = body instanceof ReplyBody ? body : undefined;
    const web: { response?: Response } = {};
    super(
      reply ? (pipeable(reply, web) as unknown as BodyInit) : (body as BodyInit | null | undefined),
      init,
    );
    this.#reply = reply;
    this.#init = init;
    this.#web = web;
  }

  /** srvx's `Response` forwards every Web method and property (`body`, `text()`…) to this. */
  get _response(): Response {
    if (!this.#reply) return Reflect.get(FastResponse.prototype, '_response', this) as Response;
    this.#web.response ??= new Response(this.#reply.readable(), this.#init);
    return this.#web.response;
  }
}

/** The slice of a Node writable the body writes to: the `ServerResponse` srvx passes, or its own `PassThrough`. */
export type Destination = Pick<
  ServerResponse,
  'write' | 'end' | 'destroy' | 'once' | 'off' | 'writableFinished' | 'destroyed'
>;

/**
 * What srvx's adapter looks for: an object with `pipe` and without `on` (so it does not wait for a `readable`
 * event first). It writes the head, calls `pipe(response)`, and waits for the response to close. A response already
 * gone by the time the reply is ready (the client left while it waited for the first token), or a HEAD, is never
 * piped: srvx calls `destroy` instead, which cancels the reply, so it is still charged and logged.
 */
function pipeable(
  body: ReplyBody,
  web: { readonly response?: Response },
): { pipe<D extends Destination>(destination: D): D; destroy(): void } {
  return {
    pipe(destination) {
      // Something read the Response as a Web one first (its `body`, `clone()`…): that stream is the body's one
      // reader, so it is what goes out. A second reader would take tokens the other never sees.
      const stream = web.response?.body;
      if (stream) {
        const source = Readable.fromWeb(stream as Parameters<typeof Readable.fromWeb>[0]);
        void pipeline(source, destination as unknown as NodeJS.WritableStream).catch(() => {});
      } else void writeReply(body, destination);
      return destination;
    },
    destroy() {
      if (web.response) void web.response.body?.cancel().catch(() => {});
      else cancel(body);
    },
  };
}

/** A failure to cancel (an `onEnd` that throws) must not become an unhandled rejection, which ends a Node process. */
function cancel(body: ReplyBody): void {
  body.cancel().catch(() => {});
}

/**
 * Writes the body to `out` as each text comes, waiting for `drain` when `out` says it is full (so the upstream is read
 * no faster than the client takes it), and ends `out` after the last. Resolves once done, or once `out` is gone.
 */
export async function writeReply(body: ReplyBody, out: Destination): Promise<void> {
  // Closed before the end: the client left. Nothing else tells the body (srvx only waits for the close).
  const onClose = () => {
    if (!out.writableFinished) cancel(body);
  };
  out.once('close', onClose);
  try {
    if (out.destroyed) return cancel(body);
    if (body.opening) out.write(body.opening);
    for (;;) {
      const text = await body.next();
      // Complete, even if its end hook failed (the text is then lost, but the client is not left hanging).
      if (body.complete) return void out.end(text ?? '');
      if (text === undefined) return; // cancelled: the response is gone
      if (!out.write(text)) await drained(out);
    }
  } catch {
    // The reply's reader left while the client was still there: it can only be cut, not ended in its protocol. (Not
    // with the error: on a stream with no error listener, that would be an uncaught exception.)
    out.destroy();
  } finally {
    out.off('close', onClose);
  }
}

/** Resolves once the response can take more (`drain`), or is gone (`close`: the body is cancelled meanwhile). */
function drained(out: Destination): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.once('drain', done);
    out.once('close', done);
  });
}
