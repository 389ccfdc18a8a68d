import { type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { ProxyError } from '../errors';

/**
 * The proxy's tracer, through `@opentelemetry/api` only: with no SDK registered it is the API's no-op tracer, whose
 * spans never record, so every span here is started, checked once with `isRecording()`, and otherwise left alone.
 * Whoever registers a provider (server/tracing.ts, `@vercel/otel`, a test) turns it on. Looked up on each use rather
 * than kept: the API's stand-in tracer keeps the first provider it meets for good, which would outlive a test's.
 */
export function tracer(): Tracer {
  return trace.getTracer('ai-chat-proxy');
}

/** The GenAI semantic conventions' operation name: every span of a request is part of one chat completion. */
export const CHAT_OPERATION = { 'gen_ai.operation.name': 'chat' } as const;

/**
 * Marks a span with why its step failed: `error.type` is the proxy's error code (`rate_limited`, `upstream_timeout`),
 * never a message, which may quote the upstream. A refusal (4xx) is an answer, not a fault: only a 5xx or an
 * unexpected error sets the span's status to ERROR.
 */
export function markFailed(span: Span, error: unknown): void {
  if (error instanceof ProxyError) {
    span.setAttribute('error.type', error.code);
    if (error.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    return;
  }
  span.setAttribute('error.type', error instanceof Error ? error.name : 'unknown');
  span.setStatus({ code: SpanStatusCode.ERROR });
}
