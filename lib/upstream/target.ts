import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { ChatRequest, Reply } from '../types';
import { linkedAbort, UpstreamTimeout } from './abort';
import { abortError, midStreamError, UpstreamFailure, upstreamError } from './errors';

export interface AttemptTimeouts {
  /** From the request to the first token. */
  readonly firstTokenMs: number;
  /** Between two tokens, once streaming. */
  readonly idleMs: number;
}

/** One OpenAI-compatible API with one key: a single attempt, no retries (lib/failover.ts owns those). */
export interface UpstreamTarget {
  /** Names the base URL + key pair, for logs and for the rule "do not fall back to the same failing key". */
  readonly provider: string;
  /**
   * Starts a streamed completion and waits for its first token. Rejects with an UpstreamFailure (with retry advice)
   * if the upstream fails before that, so the caller can retry, fall back, or answer with a real HTTP status.
   * `signal` aborts the upstream request, as do the timeouts.
   */
  open(request: ChatRequest, model: string, signal: AbortSignal, timeouts: AttemptTimeouts): Promise<Reply>;
}

export interface TargetOptions {
  readonly provider: string;
  readonly apiKey: string;
  readonly baseURL: string | undefined;
  readonly systemPrompt: string;
}

export function createUpstreamTarget(options: TargetOptions): UpstreamTarget {
  // Built once: the client keeps no per-request state, and its own retries are off because the retry policy is ours.
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL ?? null,
    maxRetries: 0,
    // The SDK would print raw upstream payloads to the console; our one log line records failures, redacted.
    logLevel: 'off',
  });
  const secrets = [options.apiKey];
  const system: ChatCompletionMessageParam[] = options.systemPrompt
    ? [{ role: 'system', content: options.systemPrompt }]
    : [];

  return {
    provider: options.provider,
    async open(request, model, signal, timeouts) {
      const attempt = linkedAbort(signal, { ms: timeouts.firstTokenMs, kind: 'first_token' });
      const outcome: Reply['outcome'] = { deltas: 0 };
      let iterator: AsyncIterator<ChatCompletionChunk> | undefined;
      let first: string | undefined;
      try {
        const stream = await client.chat.completions.create(
          {
            model,
            messages: [...system, ...request.messages],
            max_tokens: request.maxTokens,
            ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal: attempt.signal },
        );
        iterator = stream[Symbol.asyncIterator]();
        while (first === undefined) {
          const next = await iterator.next();
          if (next.done) break;
          first = absorb(next.value, outcome);
        }
        // The SDK ends an aborted stream quietly instead of throwing, so an early end is checked against the signal.
        if (attempt.signal.aborted) throw attempt.signal.reason;
      } catch (error) {
        attempt.dispose();
        await iterator?.return?.();
        throw attempt.signal.aborted ? abortError(attempt.signal) : upstreamError(error, secrets);
      }
      if (first === undefined) {
        attempt.dispose();
        const detail = `stream ended without text (finish_reason: ${outcome.finishReason ?? 'none'})`;
        const message = 'The assistant returned an empty reply. Please try again.';
        throw new UpstreamFailure(
          502,
          'upstream_empty',
          message,
          { retry: true, fallback: 'any' },
          { detail },
        );
      }
      attempt.clearTimer();
      return { tokens: rest(first, iterator, outcome, attempt, timeouts.idleMs, secrets), outcome };
    },
  };
}

async function* rest(
  first: string,
  iterator: AsyncIterator<ChatCompletionChunk>,
  outcome: Reply['outcome'],
  attempt: ReturnType<typeof linkedAbort>,
  idleMs: number,
  secrets: readonly string[],
): AsyncGenerator<string> {
  let finished = false;
  try {
    yield first;
    for (;;) {
      // A stalled stream is aborted, not just abandoned: the upstream stops generating (and billing).
      const idle = setTimeout(() => attempt.abort(new UpstreamTimeout('idle')), idleMs);
      let next: IteratorResult<ChatCompletionChunk>;
      try {
        next = await iterator.next();
      } finally {
        clearTimeout(idle);
      }
      if (next.done) {
        if (attempt.signal.aborted) throw attempt.signal.reason;
        finished = true;
        return;
      }
      const text = absorb(next.value, outcome);
      if (text) yield text;
    }
  } catch (error) {
    throw attempt.signal.aborted ? abortError(attempt.signal) : midStreamError(error, secrets);
  } finally {
    attempt.dispose();
    // On an early exit (client gone, timeout), `return()` aborts the SDK's request so no more tokens are billed.
    if (!finished) await iterator.return?.();
  }
}

/** Records usage and finish reason from a chunk and returns its text, if any. */
function absorb(chunk: ChatCompletionChunk, outcome: Reply['outcome']): string | undefined {
  if (chunk.usage) {
    outcome.usage = {
      promptTokens: chunk.usage.prompt_tokens,
      completionTokens: chunk.usage.completion_tokens,
      totalTokens: chunk.usage.total_tokens,
    };
  }
  const choice = chunk.choices[0];
  if (choice?.finish_reason) outcome.finishReason = choice.finish_reason;
  const text = choice?.delta?.content;
  if (!text) return undefined;
  outcome.deltas++;
  return text;
}
