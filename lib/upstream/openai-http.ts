import { APIConnectionError, APIError } from 'openai/error';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { HeaderLookup } from '../types';
import { platformSignal } from './abort';

/**
 * The two calls the proxy makes to an OpenAI-compatible API: a streamed chat completion and a plain JSON POST
 * (moderation). The `openai` package is kept for its types and its error classes, built exactly as its client builds
 * them (`APIError.generate`), so every failure is classified as before; its client (request building, retries,
 * layered SSE iterators) is not on the path of each token any more, nor in the edge bundle.
 */
export interface Endpoint {
  /** The API root, e.g. `https://api.openai.com/v1`; undefined means OpenAI's. */
  readonly baseURL: string | undefined;
  readonly apiKey: string;
  /** How the request is sent: the platform's `fetch` unless the platform brings a faster way (the Node server). */
  readonly transport?: Transport | undefined;
}

/**
 * An answer's headers as the proxy reads them: a few by name on every answer (the provider's rate limits), all of them
 * only for an error (the SDK's `APIError` keeps them). A transport whose client hands them over as a plain record
 * (undici's `request`) builds the `Headers` only then: about 5 µs a request otherwise.
 */
export interface ResponseHeaders extends HeaderLookup {
  all(): Headers;
}

/** An upstream answer, as much of it as the proxy reads. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** The body as it arrives. Reading it to its end, or `cancel`, lets the connection go. */
  readonly body: AsyncIterable<Uint8Array>;
  text(): Promise<string>;
  /** Stops reading before the end: the connection closes, so nothing more is generated (or billed). */
  cancel(): Promise<void>;
}

export interface TransportRequest {
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly signal: AbortSignal;
}

/** Sends one POST. Rejects when it gets no answer (the network, or `signal`); any status is an answer. */
export type Transport = (url: string, request: TransportRequest) => Promise<UpstreamResponse>;

/** The Web platform's way: `fetch`, on the edge and wherever no faster transport is given. */
export const fetchTransport: Transport = async (url, { headers, body, signal }) => {
  const response = await fetch(url, { method: 'POST', headers, body, signal: platformSignal(signal) });
  const stream = response.body;
  // Taken when the body is first read (`text()` reads it otherwise); a cancel goes through it then, which also ends
  // a read that is waiting (the stream itself cannot be cancelled while a reader holds it).
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const read = (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    reader ??= stream?.getReader();
    return reader ? reader.read() : Promise.resolve({ done: true, value: undefined });
  };
  return {
    status: response.status,
    headers: { get: (name) => response.headers.get(name), all: () => response.headers },
    body: {
      [Symbol.asyncIterator]: () => ({
        next: read,
        return: async () => ({ done: true, value: undefined }),
      }),
    },
    text: () => response.text(),
    cancel: async () => {
      await (reader ?? stream)?.cancel().catch(() => {});
    },
  };
};

const OPENAI = 'https://api.openai.com/v1';

export function urlOf(endpoint: Endpoint, path: string): string {
  const base = endpoint.baseURL ?? OPENAI;
  return `${base.endsWith('/') ? base.slice(0, -1) : base}${path}`;
}

/** POSTs `body` and resolves with the response once its status is 2xx; rejects with the SDK's error classes. */
async function post(
  endpoint: Endpoint,
  path: string,
  body: unknown,
  signal: AbortSignal,
  accept: string,
): Promise<UpstreamResponse> {
  const send = endpoint.transport ?? fetchTransport;
  const headers = { authorization: `Bearer ${endpoint.apiKey}`, 'content-type': 'application/json', accept };
  let response: UpstreamResponse;
  try {
    response = await send(urlOf(endpoint, path), { headers, body: JSON.stringify(body), signal });
  } catch (error) {
    // An abort is the caller's to explain (its signal says why); anything else never reached an answer.
    if (signal.aborted) throw error;
    throw new APIConnectionError({ cause: error instanceof Error ? error : new Error(String(error)) });
  }
  if (response.status >= 200 && response.status < 300) return response;
  // As the SDK does: the body as JSON when it is JSON (its `error` object), else its text as the message.
  const text = await response.text().catch((error: unknown) => String(error));
  const json = parseJson(text);
  const error = json as object | undefined;
  throw APIError.generate(
    response.status,
    error,
    json === undefined ? text : undefined,
    response.headers.all(),
  );
}

export async function postJson<T>(
  endpoint: Endpoint,
  path: string,
  body: unknown,
  signal: AbortSignal,
): Promise<T> {
  const response = await post(endpoint, path, body, signal, 'application/json');
  return JSON.parse(await response.text()) as T;
}

/**
 * A streamed chat completion: its response (status, headers) and its chunks as they arrive, a batch per read of the
 * body (one read often carries several events, and a batch costs one step of the iterator, not one per event).
 */
export async function postChatStream(
  endpoint: Endpoint,
  body: unknown,
  signal: AbortSignal,
): Promise<{ response: UpstreamResponse; chunks: AsyncGenerator<ChatCompletionChunk[]> }> {
  const response = await post(endpoint, '/chat/completions', body, signal, 'text/event-stream');
  return { response, chunks: chunksOf(response) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Server-sent events to chat chunks, in one pass over each read: split on blank lines, join an event's `data:`
 * lines, stop at `[DONE]`; the chunks of one read come as one batch. An `error` event or a payload with an `error`
 * object is the SDK's `APIError`; a payload that is not JSON, its `SyntaxError` (either is thrown after the chunks
 * before it in the same read have been yielded). `[DONE]` ends the chunks at once: the body's own end (its last
 * bytes, read only so the connection can be reused) is not waited for (`drainRest`), so the reply's end goes out in
 * the same write as its last tokens when they came together, one write a reply fewer. Returning early (the client
 * left, a timeout) cancels the body, which closes the upstream connection, so nothing more is generated or billed.
 */
async function* chunksOf(response: UpstreamResponse): AsyncGenerator<ChatCompletionChunk[]> {
  const reads = response.body[Symbol.asyncIterator]();
  const decode = utf8Reads();
  let buffer = '';
  let settled = false; // read to its end, or left to drain: nothing to cancel
  try {
    for (;;) {
      const read = await reads.next();
      if (read.done) {
        settled = true;
        return;
      }
      buffer += decode(read.value);
      if (buffer.includes('\r')) buffer = lineFeeds(buffer);
      const batch: ChatCompletionChunk[] = [];
      let failed: { error: unknown } | undefined;
      let over = false;
      // Events are cut at an offset, and what is left of the read kept once, after them: not a new remainder each.
      let at = 0;
      for (let end = buffer.indexOf('\n\n'); end >= 0 && !over && !failed; end = buffer.indexOf('\n\n', at)) {
        const event = buffer.slice(at, end);
        at = end + 2;
        try {
          const chunk = parseEvent(event, response.headers);
          if (chunk === DONE) over = true;
          else if (chunk) batch.push(chunk);
        } catch (error) {
          failed = { error };
        }
      }
      buffer = buffer.slice(at);
      if (batch.length > 0) yield batch;
      if (failed) throw failed.error;
      if (over) {
        settled = true;
        drainRest(reads, response);
        return;
      }
    }
  } finally {
    if (!settled) {
      try {
        await reads.return?.();
      } finally {
        await response.cancel();
      }
    }
  }
}

/**
 * A stream's reads as text. One decoder serves every stream's reads while they end on a whole character, as nearly
 * all do: a `TextDecoder` costs about 2 µs to make on Node 20 (0.4-1 on Node 24), and one a reply was made before. A
 * stream whose read splits a character gets its own from then on, which carries the rest of it into the next read.
 * A byte-order mark is dropped at the stream's start only, as one decoder for the whole stream did: a decoder drops
 * one at the start of each `decode` (unless told not to), which here would be any read's.
 */
function utf8Reads(): (bytes: Uint8Array) => string {
  let own: TextDecoder | undefined;
  let started = false;
  return (bytes) => {
    if (!own && !endsWhole(bytes)) own = new TextDecoder('utf-8', { ignoreBOM: true });
    const text = own ? own.decode(bytes, { stream: true }) : WHOLE.decode(bytes);
    if (started || !text) return text;
    started = true;
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  };
}

const WHOLE = new TextDecoder('utf-8', { ignoreBOM: true });

/** The bytes end on a whole UTF-8 character: ASCII, or a lead byte followed by all its continuation bytes. */
export function endsWhole(bytes: Uint8Array): boolean {
  const last = bytes.length - 1;
  if (last < 0 || (bytes[last] as number) < 0x80) return true;
  let lead = last;
  while (lead > last - 3 && lead > 0 && ((bytes[lead] as number) & 0xc0) === 0x80) lead--;
  const byte = bytes[lead] as number;
  const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
  return last - lead + 1 === length;
}

/** How long the body may go on after `[DONE]` (an upstream that keeps it open) before its connection is cut. */
const DRAIN_MS = 10_000;

/**
 * The rest of a body after `[DONE]`, normally only its end, read in the background so the pool can reuse the
 * connection; one that has not ended after `DRAIN_MS` is cancelled (its connection closes).
 */
function drainRest(reads: AsyncIterator<Uint8Array>, response: UpstreamResponse): void {
  const timer = setTimeout(() => void response.cancel().catch(() => {}), DRAIN_MS);
  const step = (): Promise<void> => reads.next().then((read) => (read.done ? clearTimeout(timer) : step()));
  // From a promise, so that even a read that throws at once ends here and not in the finished reply.
  Promise.resolve()
    .then(step)
    .catch(() => clearTimeout(timer));
}

const DONE = Symbol('done');

/**
 * CR LF and lone CR line ends as LF. A CR at the very end is kept as it is: its LF may be the first byte of the next
 * read, and turned into a LF now, that pair would read as an empty line (the end of an event) too early.
 */
function lineFeeds(text: string): string {
  const held = text.endsWith('\r') ? 1 : 0;
  return text.slice(0, text.length - held).replace(/\r\n?/g, '\n') + (held ? '\r' : '');
}

function parseEvent(event: string, headers: ResponseHeaders): ChatCompletionChunk | typeof DONE | undefined {
  let data: string | undefined;
  let name: string | undefined;
  // Nearly every event is one `data:` line: read without splitting it into an array of lines first.
  if (event.startsWith('data:') && !event.includes('\n'))
    data = event.charCodeAt(5) === 32 ? event.slice(6) : event.slice(5);
  else
    for (const line of event.split('\n')) {
      if (line.startsWith('data:')) {
        const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
        data = data === undefined ? value : `${data}\n${value}`;
      } else if (line.startsWith('event:')) name = line.slice(6).trim();
    }
  if (data === undefined) return undefined; // a comment or a keep-alive
  if (data === '[DONE]') return DONE;
  const parsed = parseJson(data) as (ChatCompletionChunk & { error?: unknown }) | undefined;
  if (parsed === undefined)
    throw new SyntaxError('Error reading response: malformed server-sent event JSON.');
  if (name === 'error') {
    throw new APIError(undefined, (parsed.error ?? parsed) as object, undefined, headers.all());
  }
  if (parsed.error) throw new APIError(undefined, parsed.error as object, undefined, headers.all());
  return parsed;
}
