import { APIError } from 'openai/error';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { type ModelsConfig, optionsFor } from '../config/models';
import type { ToolDeclaration } from '../config/tools';
import type { ChatRequest, Delta, HeaderLookup, Reply, ToolCallFragment } from '../types';
import { type LinkedAbort, linkedAbort, UpstreamTimeout } from './abort';
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
  readonly onHeaders?: (model: string, status: number | undefined, headers: HeaderLookup | undefined) => void;
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
      let iterator: AsyncIterator<ChatCompletionChunk[]> | undefined;
      let first: Delta[] | undefined;
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
        first = await firstDeltas(iterator, outcome);
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
      const tokens = new UpstreamTokens(first, iterator, outcome, attempt, timeouts.idleMs, secrets);
      return {
        tokens,
        outcome,
        ready: tokens.ready,
        take: tokens.take,
        ...(adapted.length > 0 && { adapted }),
      };
    },
  };
}

/** The deltas of the first batch that has any (what else it carried is recorded in `outcome`). */
async function firstDeltas(
  iterator: AsyncIterator<ChatCompletionChunk[]>,
  outcome: Reply['outcome'],
): Promise<Delta[] | undefined> {
  for (;;) {
    const next = await iterator.next();
    if (next.done) return undefined;
    const deltas = absorbAll(next.value, outcome);
    if (deltas.length > 0) return deltas;
  }
}

/** A batch's chunks in order: their deltas, with usage and finish reason recorded as they come. */
function absorbAll(chunks: readonly ChatCompletionChunk[], outcome: Reply['outcome']): Delta[] {
  const deltas: Delta[] = [];
  for (const chunk of chunks) {
    const delta = absorb(chunk, outcome);
    if (delta !== undefined) deltas.push(delta);
  }
  return deltas;
}

function emptyReply(outcome: Reply['outcome']): UpstreamFailure {
  const detail = `stream ended without text (finish_reason: ${outcome.finishReason ?? 'none'})`;
  const message = 'The assistant returned an empty reply. Please try again.';
  return new UpstreamFailure(502, 'upstream_empty', message, { retry: true, fallback: 'any' }, { detail });
}

/**
 * The reply's deltas after the first token, read a batch at a time: the deltas of a batch already read are handed
 * out without waiting (`ready`), so the reply stream sends them as one chunk, and the iterator is a plain object,
 * not an async generator (which costs several microtask turns per step, on the path of every token).
 */
class UpstreamTokens implements AsyncIterableIterator<Delta> {
  private batch: Delta[];
  private at = 0;
  /** A tool call is an answer too: the app runs the tool and asks again. */
  private answered: boolean;
  private closed = false;
  /** A read of the body is in flight. */
  private reading = false;
  /** A stalled stream is aborted, not just abandoned: the upstream stops generating (and billing). */
  private readonly idle: ReturnType<typeof idleWatch>;

  constructor(
    first: Delta[],
    private readonly iterator: AsyncIterator<ChatCompletionChunk[]>,
    private readonly outcome: Reply['outcome'],
    private readonly attempt: LinkedAbort,
    idleMs: number,
    private readonly secrets: readonly string[],
  ) {
    this.batch = first;
    this.answered = first.some(answers);
    this.idle = idleWatch(idleMs, () => attempt.abort(new UpstreamTimeout('idle')));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  readonly ready = (): boolean => !this.closed && this.at < this.batch.length;

  /** `Reply.take`: the batch's next delta, if there is one. */
  readonly take = (): Delta | undefined => {
    if (this.closed) return undefined;
    const delta = this.batch[this.at];
    if (delta !== undefined) this.at++;
    return delta;
  };

  next(): Promise<IteratorResult<Delta>> {
    const delta = this.take();
    return delta === undefined ? this.read() : Promise.resolve({ done: false, value: delta });
  }

  /**
   * An early exit (client gone, timeout) cancels the body, which closes the upstream request: no more is billed. A
   * read in flight is aborted first: the body's own `return` would wait for that read, which a stalled upstream
   * might never answer.
   */
  async return(): Promise<IteratorResult<Delta>> {
    if (this.reading) this.attempt.abort();
    if (!this.closed) await this.close(false);
    return { done: true, value: undefined };
  }

  private async read(): Promise<IteratorResult<Delta>> {
    if (this.closed) return { done: true, value: undefined };
    const { attempt, outcome } = this;
    try {
      for (;;) {
        this.idle.waiting();
        this.reading = true;
        let next: IteratorResult<ChatCompletionChunk[]>;
        try {
          next = await this.iterator.next();
        } finally {
          this.reading = false; // not `.finally()`: two more promises on the path of every read
        }
        this.idle.arrived();
        if (next.done) {
          if (attempt.signal.aborted) throw attempt.signal.reason;
          // A model that only thought and then said (or called) nothing has not answered: say so, not end in silence.
          if (!this.answered) throw emptyReply(outcome);
          await this.close(true);
          return { done: true, value: undefined };
        }
        const deltas = absorbAll(next.value, outcome);
        if (deltas.length === 0) continue;
        if (!this.answered) this.answered = deltas.some(answers);
        this.batch = deltas;
        this.at = 1;
        return { done: false, value: deltas[0] as Delta };
      }
    } catch (error) {
      await this.close(false);
      throw attempt.signal.aborted ? abortError(attempt.signal) : midStreamError(error, this.secrets);
    }
  }

  private async close(finished: boolean): Promise<void> {
    this.closed = true;
    this.idle.dispose();
    this.attempt.dispose();
    if (!finished) await this.iterator.return?.();
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
