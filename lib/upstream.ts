import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { ProxyError } from './errors';
import { clientClosed, midStreamError, upstreamError } from './upstream-errors';
import type { ChatRequest } from './validate-request';

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
}

/** A reply whose first token has already arrived, so the HTTP status is settled. */
export interface Reply {
  /** Text deltas, starting with the first. A failure mid-stream is thrown as a ProxyError. */
  readonly tokens: AsyncIterable<string>;
  /** Filled in as the stream is read: the upstream reports usage in its last chunk. */
  readonly outcome: { usage?: Usage; finishReason?: string; deltas: number };
}

export interface Upstream {
  /**
   * Starts a streamed completion and waits for its first token. Rejects with a ProxyError if the upstream fails
   * before that, so the caller can still answer with a real HTTP status. `signal` aborts the upstream request.
   */
  open(request: ChatRequest, signal: AbortSignal): Promise<Reply>;
}

export interface UpstreamOptions {
  readonly apiKey: string;
  readonly baseURL: string | undefined;
  readonly systemPrompt: string;
  /** Injected in tests and the edge proof; defaults to the platform's `fetch`. */
  readonly fetch?: typeof fetch;
}

export function createUpstream(options: UpstreamOptions): Upstream {
  // Built once: the client keeps no per-request state, and its own retries are off because the retry policy is ours.
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL ?? null,
    maxRetries: 0,
    // The SDK would print raw upstream payloads to the console; our one log line records failures, redacted.
    logLevel: 'off',
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const secrets = [options.apiKey];
  const system: ChatCompletionMessageParam[] = options.systemPrompt
    ? [{ role: 'system', content: options.systemPrompt }]
    : [];

  return {
    async open(request, signal) {
      const outcome: Reply['outcome'] = { deltas: 0 };
      let iterator: AsyncIterator<ChatCompletionChunk>;
      let first: string | undefined;
      try {
        const stream = await client.chat.completions.create(
          {
            model: request.model,
            messages: [...system, ...request.messages],
            max_tokens: request.maxTokens,
            ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal },
        );
        iterator = stream[Symbol.asyncIterator]();
        while (first === undefined) {
          const next = await iterator.next();
          if (next.done) break;
          first = absorb(next.value, outcome);
        }
      } catch (error) {
        throw signal.aborted ? clientClosed() : upstreamError(error, secrets);
      }
      // The SDK ends an aborted stream quietly instead of throwing, so an early end must be checked against the signal.
      if (signal.aborted) throw clientClosed();
      if (first === undefined) {
        throw new ProxyError(
          502,
          'upstream_empty',
          'The assistant returned an empty reply. Please try again.',
          {
            type: 'upstream_error',
            detail: `stream ended without text (finish_reason: ${outcome.finishReason ?? 'none'})`,
          },
        );
      }
      return { tokens: rest(first, iterator, outcome, signal, secrets), outcome };
    },
  };
}

async function* rest(
  first: string,
  iterator: AsyncIterator<ChatCompletionChunk>,
  outcome: Reply['outcome'],
  signal: AbortSignal,
  secrets: readonly string[],
): AsyncGenerator<string> {
  yield first;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        if (signal.aborted) throw clientClosed();
        return;
      }
      const text = absorb(next.value, outcome);
      if (text) yield text;
    }
  } catch (error) {
    throw signal.aborted ? clientClosed() : midStreamError(error, secrets);
  } finally {
    // Runs on early exit too (client gone): `return()` aborts the SDK's request so no more tokens are billed.
    await iterator.return?.();
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
