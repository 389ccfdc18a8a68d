/** Usage counts a scripted reply reports instead of its own; `cachedTokens` becomes `prompt_tokens_details`. */
export interface ScriptedUsage {
  readonly promptTokens?: number;
  readonly cachedTokens?: number;
  readonly completionTokens?: number;
  readonly reasoningTokens?: number;
}

/** What the fake upstream does with one request. */
export type Behaviour =
  /**
   * A normal streamed reply: `text`, or the configured reply (demo echo by default). `usage` replaces the counts the
   * fake reports (when the request asks for usage), e.g. to report prompt tokens read from a cache.
   */
  | {
      kind: 'reply';
      text?: string;
      finishReason?: 'stop' | 'length' | 'content_filter';
      usage?: ScriptedUsage;
    }
  /** A reasoning model that thinks, then answers nothing (only with the `reasoning` option). */
  | { kind: 'reasoning-only' }
  /** A non-streamed error answer, as a real provider sends it. */
  | { kind: 'status'; status: number; body: object; headers?: Record<string, string> }
  /** A normal reply whose first token comes only after `delayMs`. */
  | { kind: 'slow-first-token'; delayMs: number; text?: string }
  /** Sends `afterTokens` tokens, then goes silent with the connection open. */
  | { kind: 'stall'; afterTokens: number; text?: string }
  /** Sends `afterTokens` tokens, then drops the TCP connection. */
  | { kind: 'cut'; afterTokens: number; text?: string }
  /** Sends `afterTokens` tokens, then an SSE event that is not JSON. */
  | { kind: 'malformed'; afterTokens: number; text?: string }
  /** A very long answer of `tokens` tokens. */
  | { kind: 'long'; tokens: number }
  /**
   * A reply that is only a call to tool `name`: `delta.tool_calls` with the id and name first, then `arguments` (JSON
   * text, sent as it is, valid or not) in up to three pieces, then finish_reason `tool_calls`. `text` streams first.
   */
  | { kind: 'tool-call'; name: string; arguments: string; id?: string; text?: string }
  /**
   * Answers nothing (not even its headers) until `until` settles, then gives `answer`; the call is counted meanwhile,
   * and an abort seen. A test decides when: e.g. once every identical request has joined the one upstream call.
   */
  | { kind: 'held'; until: Promise<unknown>; answer: Behaviour }
  /** Sends `afterTokens` tokens, waits with the connection open until `until` settles, then sends the rest. */
  | { kind: 'pause'; afterTokens: number; until: Promise<unknown>; text?: string }
  /** A normal reply whose tokens come `tokenDelayMs` apart (the first one at once). */
  | { kind: 'paced'; tokenDelayMs: number; text?: string }
  /**
   * A normal reply whose events all go out in one write after its headers, so the proxy reads it whole: a short answer
   * from a fast model, or a provider's own cache. `openAfterDone`: the body does not end after `[DONE]` (the response
   * stays open until the client closes it), as a server whose end of body comes later.
   */
  | { kind: 'whole'; text?: string; openAfterDone?: boolean };

const openAiError = (
  status: number,
  message: string,
  type: string,
  code: string | null,
  headers?: Record<string, string>,
) =>
  ({
    kind: 'status',
    status,
    body: { error: { message, type, code, param: null } },
    ...(headers ? { headers } : {}),
  }) as const;

/** The failure modes real OpenAI-compatible APIs produce, with their real bodies. */
export const faults = {
  unauthorized: () =>
    openAiError(
      401,
      'Incorrect API key provided: sk-fake****************wxyz.',
      'invalid_request_error',
      'invalid_api_key',
    ),
  modelNotFound: (model = 'gpt-nope') =>
    openAiError(
      404,
      `The model \`${model}\` does not exist or you do not have access to it.`,
      'invalid_request_error',
      'model_not_found',
    ),
  /** `retry-after` in seconds and/or OpenAI's `retry-after-ms`. */
  rateLimited: (retryAfter: { seconds?: number; ms?: number } = { seconds: 1 }) =>
    openAiError(
      429,
      'Rate limit reached for requests on org-internal-1234.',
      'requests',
      'rate_limit_exceeded',
      {
        ...(retryAfter.seconds === undefined ? {} : { 'retry-after': String(retryAfter.seconds) }),
        ...(retryAfter.ms === undefined ? {} : { 'retry-after-ms': String(retryAfter.ms) }),
      },
    ),
  insufficientQuota: () =>
    openAiError(
      429,
      'You exceeded your current quota, please check your plan and billing details.',
      'insufficient_quota',
      'insufficient_quota',
    ),
  contextLength: () =>
    openAiError(
      400,
      "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens.",
      'invalid_request_error',
      'context_length_exceeded',
    ),
  serverError: (status: 500 | 502 | 503 = 500) =>
    openAiError(
      status,
      'The server had an error processing your request (internal host gpu-17.internal).',
      'server_error',
      null,
    ),
} satisfies Record<string, (...args: never[]) => Behaviour>;

/** Words with their trailing spaces, so the tokens join back into the exact text. */
export function splitTokens(text: string): string[] {
  return text.match(/\s*\S+\s*|\s+/g) ?? [];
}

/** Recognisably not a model: a fixed preface, then the user's own words. */
export function demoReply(said: string): string {
  const echo = said.trim() ? `You said: "${said.trim()}"` : 'You sent an empty message.';
  return `[demo] Hi! I am the built-in demo upstream, not a real model. Set OPENAI_API_KEY to talk to one. ${echo}`;
}

/** A string in up to three pieces of about equal length, so a client must join them. */
export function thirds(text: string): string[] {
  const size = Math.max(1, Math.ceil(text.length / 3));
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

/** The answer after a tool ran: the model "read" the output, so a tool loop can end in text. */
export function toolResultReply(output: string): string {
  return `The tool answered: ${output}`;
}
