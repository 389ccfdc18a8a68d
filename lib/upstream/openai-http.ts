import { APIConnectionError, APIError } from 'openai/error';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';

/**
 * The two calls the proxy makes to an OpenAI-compatible API, on the platform's own `fetch`: a streamed chat
 * completion and a plain JSON POST (moderation). The `openai` package is kept for its types and its error classes,
 * built exactly as its client builds them (`APIError.generate`), so every failure is classified as before; its
 * client (request building, retries, layered SSE iterators) is not on the path of each token any more, nor in the
 * edge bundle.
 */
export interface Endpoint {
  /** The API root, e.g. `https://api.openai.com/v1`; undefined means OpenAI's. */
  readonly baseURL: string | undefined;
  readonly apiKey: string;
}

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
): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(urlOf(endpoint, path), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${endpoint.apiKey}`,
        'content-type': 'application/json',
        accept,
      },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    // An abort is the caller's to explain (its signal says why); anything else never reached an answer.
    if (signal.aborted) throw error;
    throw new APIConnectionError({ cause: error instanceof Error ? error : new Error(String(error)) });
  }
  if (response.ok) return response;
  // As the SDK does: the body as JSON when it is JSON (its `error` object), else its text as the message.
  const text = await response.text().catch((error: unknown) => String(error));
  const json = parseJson(text);
  const error = json as object | undefined;
  throw APIError.generate(response.status, error, json === undefined ? text : undefined, response.headers);
}

export async function postJson<T>(
  endpoint: Endpoint,
  path: string,
  body: unknown,
  signal: AbortSignal,
): Promise<T> {
  const response = await post(endpoint, path, body, signal, 'application/json');
  return (await response.json()) as T;
}

/** A streamed chat completion: its response (status, headers) and its chunks, read as they arrive. */
export async function postChatStream(
  endpoint: Endpoint,
  body: unknown,
  signal: AbortSignal,
): Promise<{ response: Response; chunks: AsyncGenerator<ChatCompletionChunk> }> {
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
 * lines, stop at `[DONE]`. An `error` event or a payload with an `error` object is the SDK's `APIError`; a payload
 * that is not JSON, its `SyntaxError`. Returning early (the client left, a timeout) cancels the body, which closes
 * the upstream connection, so nothing more is generated or billed.
 */
async function* chunksOf(response: Response): AsyncGenerator<ChatCompletionChunk> {
  const reader = response.body?.getReader();
  if (!reader) return;
  const decoder = new TextDecoder();
  let buffer = '';
  let finished = false;
  let over = false; // `[DONE]` came: what follows is read (so the connection can be reused) but not parsed
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (over) continue;
      buffer += decoder.decode(value, { stream: true });
      if (buffer.includes('\r')) buffer = buffer.replace(/\r\n?/g, '\n');
      for (let end = buffer.indexOf('\n\n'); end >= 0 && !over; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const chunk = parseEvent(event, response.headers);
        if (chunk === DONE) over = true;
        else if (chunk) yield chunk;
      }
    }
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

const DONE = Symbol('done');

function parseEvent(event: string, headers: Headers): ChatCompletionChunk | typeof DONE | undefined {
  let data: string | undefined;
  let name: string | undefined;
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
    throw new APIError(undefined, (parsed.error ?? parsed) as object, undefined, headers);
  }
  if (parsed.error) throw new APIError(undefined, parsed.error as object, undefined, headers);
  return parsed;
}
