import { toProxyError } from '../errors';
import type { PlaceInLine } from '../types';
import type { ServedReply } from '../upstream/failover';
import {
  type StreamedReply,
  type StreamResponder,
  streamedResponse,
  webStreamResponse,
} from './reply-stream';
import { uiStreamHeaders } from './ui-framing';

/** The header a UI client sends to hear its place in line (`data-queue` parts) while it waits for capacity. */
export const QUEUE_UPDATES_HEADER = 'x-chat-queue-updates';

/**
 * A wait this short is not worth showing, and answering it with its real status (a 503 if it fails) is better: the
 * stream starts early only for a request still in line after this long.
 */
const ANNOUNCE_AFTER_MS = 250;

/** Where one request stands in line, as the queue tells it, for the response to pass on. */
export interface PlaceWatch {
  /** The queue's side (the request's `QueueTicket.onPlace`). */
  readonly onPlace: (place: PlaceInLine | undefined) => void;
  /** Resolves once the request has been in line for `ANNOUNCE_AFTER_MS`; never, if it left the line before. */
  readonly announced: Promise<void>;
  /** Calls `tell` with the latest place at once, then with each new one, until the returned function is called. */
  follow(tell: (place: PlaceInLine) => void): () => void;
}

/** A watch for a UI request that asked for queue updates; undefined for any other (no cost on the usual path). */
export function watchPlace(req: Request, protocol: 'ui' | 'text'): PlaceWatch | undefined {
  if (protocol !== 'ui' || req.headers.get(QUEUE_UPDATES_HEADER) !== 'on') return undefined;
  let latest: PlaceInLine | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let listener: ((place: PlaceInLine) => void) | undefined;
  let announce = () => {};
  const announced = new Promise<void>((resolve) => {
    announce = resolve;
  });
  return {
    onPlace(place) {
      latest = place;
      if (!place) {
        clearTimeout(timer);
        timer = undefined;
      } else if (listener) listener(place);
      else timer ??= setTimeout(announce, ANNOUNCE_AFTER_MS);
    },
    announced,
    follow(tell) {
      listener = tell;
      if (latest) tell(latest);
      return () => {
        listener = undefined;
      };
    },
  };
}

/** How a request's wait for its first token can end. */
export interface Outcomes {
  /** The first token is in: the usual streamed reply (`respond`). */
  readonly ready: (reply: ServedReply) => StreamedReply;
  /** No reply: settles and logs, and answers with the error's own status (`inStream`: logs a 200 instead). */
  readonly failed: (caught: unknown, inStream: boolean) => Response | Promise<Response>;
}

/**
 * Waits for the first token and answers with its real status, unless the request was told to wait in line and its
 * client asked to hear where it stands: then the UI stream starts at once (200), with a transient `data-queue` part
 * (`{ position, etaMs }`) for each new place, then the reply as usual. A failure after that start, a queue timeout
 * included, can only be an `error` part: only clients that asked for updates ever get one instead of the status.
 */
export async function startWhenReady(
  first: Promise<ServedReply>,
  watch: PlaceWatch | undefined,
  outcomes: Outcomes,
  headers: Record<string, string>,
  responder: StreamResponder = webStreamResponse,
): Promise<Response> {
  const ready = (reply: ServedReply) => streamedResponse(outcomes.ready(reply), responder);
  // The usual path: nobody asked for updates.
  if (!watch) return first.then(ready, (error: unknown) => outcomes.failed(error, false));
  const settled = first.then(
    (reply) => ({ reply }),
    (error: unknown) => ({ error }),
  );
  const early = await Promise.race([settled, watch.announced.then(() => undefined)]);
  if (!early) return queuedResponse(settled, watch, outcomes, headers, responder);
  return 'reply' in early ? ready(early.reply) : outcomes.failed(early.error, false);
}

const encoder = new TextEncoder();
const sse = (chunk: object) => encoder.encode(`data: ${JSON.stringify(chunk)}\n\n`);

function queuedResponse(
  settled: Promise<{ reply: ServedReply } | { error: unknown }>,
  watch: PlaceWatch,
  outcomes: Outcomes,
  headers: Record<string, string>,
  responder: StreamResponder,
): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  // Writes are not awaited: a client that left makes them fail, and its request's signal ends the wait itself.
  const write = (bytes: Uint8Array) => void writer.write(bytes).catch(() => {});
  const stop = watch.follow((place) => write(sse({ type: 'data-queue', data: place, transient: true })));
  void settled.then(async (result) => {
    stop();
    if ('error' in result) {
      void outcomes.failed(result.error, true);
      write(sse({ type: 'error', errorText: toProxyError(result.error).message }));
      write(encoder.encode('data: [DONE]\n\n'));
      return writer.close().catch(() => {});
    }
    const { body } = outcomes.ready(result.reply);
    writer.releaseLock();
    // The reply's own stream from here on: its backpressure, and a client leaving cancels it (and the upstream).
    await body
      .readable()
      .pipeTo(writable)
      .catch(() => {});
  });
  return responder(readable, { status: 200, headers: uiStreamHeaders(headers) });
}
