import { type SpanContext, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { faults } from '../fake-upstream';
import type { RequestLog } from '../lib/log';
import { buildHandler, chatRequest, eventually, startHarness, userSays } from './support/harness';
import { SECRETS } from './support/secret-scan';

// A real SDK, registered the way @vercel/otel or server/tracing.ts registers one, for this file only: the fast
// project shares one module graph per worker, so it is unregistered when the file ends.
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
afterAll(async () => {
  trace.disable();
  await provider.shutdown();
});

const h = await startHarness({
  UPSTREAM_MAX_ATTEMPTS: '2',
  RETRY_BASE_DELAY_MS: '5',
  RETRY_MAX_DELAY_MS: '20',
});
const PROMPT = 'Tell me about the purple walrus of Tallinn';

beforeEach(() => exporter.reset());

const spans = () => exporter.getFinishedSpans();
const byName = (name: string) => spans().filter((span) => span.name === name);
const parentOf = (span: ReadableSpan): SpanContext | undefined => span.parentSpanContext;

/** Sends one prompt and waits for its log line, which ends the request's span. */
async function ask(request = chatRequest(userSays(PROMPT), { headers: { accept: 'text/plain' } })) {
  const res = await h.handler(request);
  const text = await res.text();
  await eventually(() => h.logs.length === 1 && byName('POST /api/chat').length === 1);
  const [line] = h.logs as [RequestLog];
  const [root] = byName('POST /api/chat') as [ReadableSpan];
  return { res, text, line, root };
}

describe('traces', () => {
  it('a reply is one server span with the limiter, the upstream attempt and the stream as its children', async () => {
    h.fake.script({ kind: 'reply', text: 'It is a fine walrus.' });
    const { res, text, line, root } = await ask();
    expect(res.status).toBe(200);
    expect(text).toBe('It is a fine walrus.');

    expect(root.kind).toBe(SpanKind.SERVER);
    expect(parentOf(root)).toBeUndefined();
    expect(root.status.code).toBe(SpanStatusCode.UNSET);
    expect(root.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'test-model',
      'gen_ai.response.model': 'test-model',
      'gen_ai.usage.input_tokens': line.usage?.prompt_tokens,
      'gen_ai.usage.output_tokens': line.usage?.completion_tokens,
      'gen_ai.response.finish_reasons': ['stop'],
      'http.request.method': 'POST',
      'http.route': '/api/chat',
      'http.response.status_code': 200,
      request_id: line.request_id,
      outcome: 'complete',
      attempts: 1,
      ratelimit: 'allowed',
      ttft_ms: line.ttft_ms,
      duration_ms: line.duration_ms,
    });
    expect(line.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(root.attributes.fallback).toBeUndefined();

    const names = spans().map((span) => span.name);
    expect(names.sort()).toEqual(['POST /api/chat', 'chat test-model', 'chat.stream', 'ratelimit.admit']);
    const { traceId, spanId } = root.spanContext();
    for (const child of spans().filter((span) => span !== root)) {
      expect(child.spanContext().traceId).toBe(traceId);
      expect(parentOf(child)?.spanId).toBe(spanId);
    }
    const [attempt] = byName('chat test-model') as [ReadableSpan];
    expect(attempt.kind).toBe(SpanKind.CLIENT);
    expect(attempt.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'test-model',
      'gen_ai.request.max_tokens': h.config.caps.maxOutputTokens,
      provider: 'main',
    });
    const [stream] = byName('chat.stream') as [ReadableSpan];
    expect(stream.attributes).toMatchObject({
      'gen_ai.response.model': 'test-model',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.output_tokens': line.usage?.completion_tokens,
    });
    const [admit] = byName('ratelimit.admit') as [ReadableSpan];
    expect(admit.attributes.ratelimit).toBe('allowed');
  });

  it('a failed request records each failed attempt and ends its span in error, with no stream span', async () => {
    h.fake.script(faults.serverError(500), faults.serverError(500));
    const { res, line, root } = await ask();
    expect(res.status).toBe(line.status);
    expect(line.status).toBeGreaterThanOrEqual(500);
    expect(line.error_code).toBeTruthy();

    expect(root.status.code).toBe(SpanStatusCode.ERROR);
    expect(root.attributes).toMatchObject({
      'gen_ai.request.model': 'test-model',
      'http.response.status_code': line.status,
      'error.type': line.error_code,
      outcome: 'rejected',
      ratelimit: 'allowed',
      attempts: 2,
    });
    expect(root.attributes['gen_ai.response.model']).toBeUndefined();
    const attempts = byName('chat test-model');
    expect(attempts).toHaveLength(2);
    for (const attempt of attempts) {
      expect(attempt.status.code).toBe(SpanStatusCode.ERROR);
      expect(attempt.attributes['error.type']).toBe(line.error_code);
      expect(parentOf(attempt)?.spanId).toBe(root.spanContext().spanId);
    }
    expect(byName('chat.stream')).toHaveLength(0);
  });

  it('a refusal by the limiter is an answer, not a fault: error.type says why, the status stays unset', async () => {
    const logs: RequestLog[] = [];
    const strict = buildHandler({ ...h.config, rateLimit: { ...h.config.rateLimit, requests: 1 } }, { logs });
    const request = () => chatRequest(userSays(PROMPT), { headers: { 'x-real-ip': '203.0.113.99' } });
    await (await strict(request())).text();
    await eventually(() => logs.length === 1);
    exporter.reset();
    const refused = await strict(request());
    expect(refused.status).toBe(429);
    await eventually(() => logs.length === 2 && byName('POST /api/chat').length === 1);
    const [admit] = byName('ratelimit.admit') as [ReadableSpan];
    expect(admit.attributes['error.type']).toBe('rate_limited');
    expect(admit.status.code).toBe(SpanStatusCode.UNSET);
    const [root] = byName('POST /api/chat') as [ReadableSpan];
    expect(root.attributes).toMatchObject({ 'http.response.status_code': 429, 'error.type': 'rate_limited' });
    expect(byName('chat test-model')).toHaveLength(0);
  });

  it('no span holds a key, a token or a word of the conversation', async () => {
    h.fake.script({ kind: 'reply', text: 'The walrus says hello.' }, faults.serverError(500));
    await ask();
    h.logs.length = 0;
    const authorized = chatRequest(userSays(PROMPT), {
      headers: { authorization: `Bearer ${SECRETS.aliceToken}` },
    });
    const all: ReadableSpan[] = [...spans()];
    exporter.reset();
    await ask(authorized);
    all.push(...spans());
    expect(all.length).toBeGreaterThan(4);
    const text = JSON.stringify(
      all.map((span) => ({
        name: span.name,
        attributes: span.attributes,
        events: span.events,
        links: span.links,
      })),
    );
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
    for (const word of [PROMPT, 'purple walrus', 'Tallinn', 'The walrus says', h.config.systemPrompt]) {
      expect(text).not.toContain(word);
    }
  });
  it('with no SDK registered, a request starts no span at all (the API is a no-op)', async () => {
    trace.disable();
    try {
      const logs: RequestLog[] = [];
      const untraced = buildHandler(h.config, { logs });
      const res = await untraced(chatRequest(userSays(PROMPT), { headers: { accept: 'text/plain' } }));
      expect(res.status).toBe(200);
      await res.text();
      await eventually(() => logs.length === 1);
      expect(spans()).toHaveLength(0);
    } finally {
      trace.setGlobalTracerProvider(provider);
    }
  });
});
