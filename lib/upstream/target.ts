import { APIError } from 'openai/error';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { type ModelsConfig, optionsFor } from '../config/models';
import type { ToolDeclaration } from '../config/tools';
import type { ChatRequest, Delta, Reply, ToolCallFragment } from '../types';
import { linkedAbort, UpstreamTimeout } from './abort';
import { abortError, midStreamError, UpstreamFailure, upstreamError } from './errors';
import { postChatStream, type Transport } from './openai-http';
import { createParameterFixes } from './parameters';

/** What one attempt may take, and what comes after it. */
export interface Attempt {
  /** From the request to the first token (of text or of reasoning), unless the model has its own. */
  readonly firstTokenMs: number;
  /** Between two tokens, once streaming. */
  readonly idleMs: number;
  /** A later route (another model or provider) could answer if this one cannot: the queue need not wait for it. */
  readonly mayFallBack?: boolean;
}

/** One OpenAI-compatible API with one key: a single attempt, no retries (lib/upstream/failover.ts owns those). */
export interface UpstreamTarget {
  /** Names the base URL + key pair, for logs and for the rule "do not fall back to the same failing key". */
  readonly provider: string;
  /**
   * Starts a streamed completion and waits for its first token. Rejects with an UpstreamFailure (with retry advice)
   * if the upstream fails before that, so the caller can retry, fall back, or answer with a real HTTP status.
   * `signal` aborts the upstream request, as do the timeouts.
   */
  open(request: ChatRequest, model: string, signal: AbortSignal, attempt: Attempt): Promise<Reply>;
}

export interface TargetOptions {
  readonly provider: string;
  readonly apiKey: string;
  readonly baseURL: string | undefined;
  readonly systemPrompt: string;
  readonly models: ModelsConfig;
  /** The operator's tools (`TOOLS`), sent with every request. */
  readonly tools: readonly ToolDeclaration[];
  /** A reasoning model may use the whole start window for its first token. */
  readonly startDeadlineMs: number;
  /** How the request is sent (lib/upstream/openai-http.ts); `fetch` by default. */
  readonly transport?: Transport | undefined;
  /** Every answer's status and headers (its rate-limit headers teach the queue when to hold off). */
  readonly onHeaders?: (model: string, status: number | undefined, headers: Headers | undefined) => void;
}

/** A refused parameter is fixed and the request sent again, at most this often (one per distinct parameter). */
const MAX_ADAPTATIONS = 3;

export function createUpstreamTarget(options: TargetOptions): UpstreamTarget {
  const endpoint = { baseURL: options.baseURL, apiKey: options.apiKey, transport: options.transport };
  const secrets = [options.apiKey];
  // OpenAI knows `safety_identifier`; other OpenAI-compatible servers know the older `user`, if anything.
  const openai = !options.baseURL || /^https:\/\/[\w.-]*openai\.com(\/|$)/.test(options.baseURL);
  const fixes = createParameterFixes(
    options.systemPrompt,
    openai ? 'safety_identifier' : 'user',
    options.tools,
  );

  return {
    provider: options.provider,
    async open(request, model, signal, timeouts) {
      const modelOptions = optionsFor(model, options.models, options.startDeadlineMs);
      const firstTokenMs = modelOptions.firstTokenTimeoutMs ?? timeouts.firstTokenMs;
      const attempt = linkedAbort(signal, { ms: firstTokenMs, kind: 'first_token' });
      const outcome: Reply['outcome'] = { deltas: 0 };
      const adapted: string[] = [];
      let iterator: AsyncIterator<ChatCompletionChunk> | undefined;
      let first: Delta | undefined;
      try {
        for (;;) {
          const body = fixes.body(request, model, modelOptions);
          const stream = await postChatStream(endpoint, body, attempt.signal)
            .then(({ chunks, response }) => {
              options.onHeaders?.(model, response.status, response.headers);
              return chunks;
            })
            .catch((error: unknown) => {
              if (error instanceof APIError) options.onHeaders?.(model, error.status, error.headers);
              const change = adapted.length < MAX_ADAPTATIONS ? fixes.learn(model, error) : undefined;
              if (!change) throw error;
              adapted.push(`${model}: ${change}`);
              return undefined;
            });
          if (stream) {
            iterator = stream;
            break;
          }
        }
        first = await firstDelta(iterator, outcome);
        // An aborted body may end quietly instead of throwing, so an early end is checked against the signal.
        if (attempt.signal.aborted) throw attempt.signal.reason;
      } catch (error) {
        attempt.dispose();
        await iterator?.return?.();
        throw attempt.signal.aborted ? abortError(attempt.signal) : upstreamError(error, secrets);
      }
      if (first === undefined) {
        attempt.dispose();
        throw emptyReply(outcome);
      }
      attempt.clearTimer();
      const tokens = rest(first, iterator, outcome, attempt, timeouts.idleMs, secrets);
      return { tokens, outcome, ...(adapted.length > 0 && { adapted }) };
    },
  };
}

async function firstDelta(
  iterator: AsyncIterator<ChatCompletionChunk>,
  outcome: Reply['outcome'],
): Promise<Delta | undefined> {
  for (;;) {
    const next = await iterator.next();
    if (next.done) return undefined;
    const delta = absorb(next.value, outcome);
    if (delta !== undefined) return delta;
  }
}

function emptyReply(outcome: Reply['outcome']): UpstreamFailure {
  const detail = `stream ended without text (finish_reason: ${outcome.finishReason ?? 'none'})`;
  const message = 'The assistant returned an empty reply. Please try again.';
  return new UpstreamFailure(502, 'upstream_empty', message, { retry: true, fallback: 'any' }, { detail });
}

async function* rest(
  first: Delta,
  iterator: AsyncIterator<ChatCompletionChunk>,
  outcome: Reply['outcome'],
  attempt: ReturnType<typeof linkedAbort>,
  idleMs: number,
  secrets: readonly string[],
): AsyncGenerator<Delta> {
  let finished = false;
  // A tool call is an answer too: the app runs the tool and asks again.
  let text = answers(first);
  // A stalled stream is aborted, not just abandoned: the upstream stops generating (and billing).
  const idle = idleWatch(idleMs, () => attempt.abort(new UpstreamTimeout('idle')));
  try {
    yield first;
    for (;;) {
      idle.waiting();
      const next = await iterator.next();
      idle.arrived();
      if (next.done) {
        if (attempt.signal.aborted) throw attempt.signal.reason;
        finished = true;
        // A model that only thought and then said (or called) nothing has not answered: say so, not end in silence.
        if (!text) throw emptyReply(outcome);
        return;
      }
      const delta = absorb(next.value, outcome);
      if (delta === undefined) continue;
      if (answers(delta)) text = true;
      yield delta;
    }
  } catch (error) {
    throw attempt.signal.aborted ? abortError(attempt.signal) : midStreamError(error, secrets);
  } finally {
    idle.dispose();
    attempt.dispose();
    // On an early exit (client gone, timeout), `return()` cancels the body, which closes the upstream request: no more tokens are billed.
    if (!finished) await iterator.return?.();
  }
}

/**
 * The idle timeout without a timer per token: the time waited for the next chunk is checked by one timer, re-armed
 * only when it fires (at most once per `ms`), so a fast stream costs a clock read per chunk, not a timer set and
 * cleared. Only the wait for the upstream counts, not the time a slow client takes to read.
 */
function idleWatch(ms: number, onIdle: () => void) {
  let since: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    timer = undefined;
    if (since === undefined) return;
    const left = since + ms - Date.now();
    if (left <= 0) onIdle();
    else timer = setTimeout(check, left);
  };
  return {
    waiting() {
      since = Date.now();
      timer ??= setTimeout(check, ms);
    },
    arrived() {
      since = undefined;
    },
    dispose() {
      clearTimeout(timer);
    },
  };
}

function answers(delta: Delta): boolean {
  return typeof delta === 'string' || 'toolCalls' in delta;
}

/** Reasoning arrives as `reasoning_content` (vLLM, DeepSeek) or `reasoning` (OpenRouter, Groq), never typed by the SDK. */
interface ReasoningDelta {
  readonly reasoning_content?: unknown;
  readonly reasoning?: unknown;
}

/**
 * Records usage and finish reason from a chunk and returns its text, tool-call fragments or reasoning, if any. (A
 * chunk carries one of them: providers stream text and tool calls in separate chunks.)
 */
function absorb(chunk: ChatCompletionChunk, outcome: Reply['outcome']): Delta | undefined {
  if (chunk.usage) {
    outcome.usage = {
      promptTokens: chunk.usage.prompt_tokens,
      cachedPromptTokens: chunk.usage.prompt_tokens_details?.cached_tokens ?? undefined,
      completionTokens: chunk.usage.completion_tokens,
      reasoningTokens: chunk.usage.completion_tokens_details?.reasoning_tokens ?? undefined,
      totalTokens: chunk.usage.total_tokens,
    };
  }
  const choice = chunk.choices[0];
  if (!choice) return undefined;
  if (choice.finish_reason) outcome.finishReason = choice.finish_reason;
  const delta = choice.delta;
  if (delta?.content) {
    outcome.deltas++;
    return delta.content;
  }
  if (delta?.tool_calls?.length) {
    outcome.deltas++;
    return { toolCalls: delta.tool_calls.map(toFragment) };
  }
  const { reasoning_content, reasoning } = (delta ?? {}) as ReasoningDelta;
  const thought = typeof reasoning_content === 'string' ? reasoning_content : reasoning;
  if (typeof thought !== 'string' || thought === '') return undefined;
  outcome.deltas++;
  return { reasoning: thought };
}

function toFragment(call: ChatCompletionChunk.Choice.Delta.ToolCall): ToolCallFragment {
  return {
    index: call.index,
    ...(call.id && { id: call.id }),
    ...(call.function?.name && { name: call.function.name }),
    ...(call.function?.arguments && { arguments: call.function.arguments }),
  };
}
