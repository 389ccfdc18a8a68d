import { type Context, type Span, SpanKind, trace } from '@opentelemetry/api';
import type { Delta, Reply } from '../types';
import type { UpstreamTarget } from '../upstream/target';
import { CHAT_OPERATION, markFailed, tracer } from './spans';

/**
 * A target whose every attempt is a span (`chat {model}`, a GenAI client span, from the request to the first token
 * or the failure; waiting for the queue included, so wrap the queued target), followed by a `chat.stream` span from
 * the first token to the end of the reply. Both are children of the request's span (`ChatRequest.trace`); a request
 * without one (nothing records) passes straight through, with no extra step per token.
 */
export function tracedTarget(target: UpstreamTarget): UpstreamTarget {
  return {
    provider: target.provider,
    async open(request, model, signal, timeouts) {
      const parent = request.trace;
      if (!parent) return target.open(request, model, signal, timeouts);
      trace.getSpan(parent)?.setAttribute('gen_ai.request.model', request.model);
      const span = tracer().startSpan(`chat ${model}`, { kind: SpanKind.CLIENT }, parent);
      span.setAttributes({
        ...CHAT_OPERATION,
        'gen_ai.request.model': model,
        'gen_ai.request.max_tokens': request.maxTokens,
        ...(request.temperature !== undefined && { 'gen_ai.request.temperature': request.temperature }),
        provider: target.provider,
      });
      try {
        const reply = await target.open(request, model, signal, timeouts);
        span.end();
        return { ...reply, tokens: streamed(reply, model, parent) };
      } catch (error) {
        markFailed(span, error);
        span.end();
        throw error;
      }
    },
  };
}

/** The reply's tokens, unchanged, inside a span that ends with them and records how they ended. */
async function* streamed(reply: Reply, model: string, parent: Context): AsyncGenerator<Delta> {
  const span = tracer().startSpan('chat.stream', { attributes: CHAT_OPERATION }, parent);
  try {
    yield* reply.tokens;
  } catch (error) {
    markFailed(span, error);
    throw error;
  } finally {
    endStream(span, reply, model, parent);
  }
}

function endStream(span: Span, reply: Reply, model: string, parent: Context): void {
  const { usage, finishReason, deltas } = reply.outcome;
  const finish = finishReason ? { 'gen_ai.response.finish_reasons': [finishReason] } : {};
  span.setAttributes({
    'gen_ai.response.model': model,
    ...finish,
    ...(usage && {
      'gen_ai.usage.input_tokens': usage.promptTokens,
      'gen_ai.usage.output_tokens': usage.completionTokens,
    }),
    deltas,
  });
  span.end();
  // The request's own span ends with its log line, usually just after: it carries the finish reason too.
  const request = trace.getSpan(parent);
  if (request?.isRecording()) request.setAttributes(finish);
}
