import { EdgeRuntime } from 'edge-runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildEdgeBundle, type EdgeBundle } from './support/edge-bundle';
import { eventually, startHarness, TEST_KEY } from './support/harness';
import { uniquePrefix } from './support/redis';
import { recordOutput } from './support/secret-scan';
import { startUpstashBridge } from './support/upstash-bridge';

const h = await startHarness();
let bundle: EdgeBundle;

beforeAll(async () => {
  bundle = await buildEdgeBundle();
});

/** A fresh edge isolate running the bundle, with env vars provided the way Vercel provides them. */
function edgeIsolate(
  env: Record<string, string>,
  code = bundle.code,
  globals: Record<string | symbol, unknown> = {},
): {
  runtime: EdgeRuntime;
  coldStartMs: number;
  logs: string[];
} {
  const logs: string[] = [];
  const started = performance.now();
  const runtime = new EdgeRuntime({
    extend: (context) => {
      const capture = (...args: unknown[]) => {
        const line = args.map(String).join(' ');
        recordOutput(line);
        logs.push(line);
      };
      Object.assign(context, {
        process: { env },
        console: { ...context.console, log: capture, error: capture },
        ...globals,
      });
      return context;
    },
  });
  runtime.evaluate(code);
  return { runtime, coldStartMs: performance.now() - started, logs };
}

describe('edge bundle', () => {
  it('imports no Node built-in', () => {
    expect(bundle.nodeBuiltins).toEqual([]);
  });

  it('leaves the tokenizer to the Node server: the edge estimates tokens', () => {
    expect(bundle.code).not.toMatch(/gpt-tokenizer|o200k/);
  });

  it('leaves metrics and the trace SDK to the Node server: the edge carries only the OpenTelemetry API', () => {
    // prom-client's process metrics, our metric names, the SDK's batching and the OTLP exporter's settings.
    expect(bundle.code).not.toMatch(
      /process_cpu_user_seconds_total|chat_requests_total|OTEL_BSP_|OTEL_EXPORTER_OTLP/,
    );
  });

  it('stays far below the 1 MB gzipped limit of Vercel Hobby', () => {
    console.info(`edge bundle: ${bundle.bytes} bytes, ${bundle.gzipBytes} bytes gzipped`);
    expect(bundle.gzipBytes).toBeLessThan(1024 * 1024);
  });

  it('stays within the 100 KB gzipped the performance issue set (the lock file pins every dependency)', () => {
    expect(bundle.gzipBytes).toBeLessThanOrEqual(100 * 1024);
  });

  it('streams a chat inside the edge runtime against the fake upstream', async () => {
    h.fake.script({ kind: 'reply', text: 'Hello from the edge.' });
    const { runtime, coldStartMs, logs } = edgeIsolate({
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'edge-model',
    });
    console.info(`edge cold start (evaluate bundle): ${coldStartMs.toFixed(1)} ms`);
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': '203.0.113.9' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Hello from the edge.');
    expect(h.fake.calls[0]?.body.model).toBe('edge-model');
    // The request's own line; `edge-model` has no price, so a `model_price_unknown` line comes too.
    const lines = () => logs.map((line) => JSON.parse(line) as { msg?: string });
    await eventually(() => lines().some((line) => line.msg === 'chat'));
    expect(lines().find((line) => line.msg === 'chat')).toMatchObject({
      status: 200,
      outcome: 'complete',
      model: 'edge-model',
    });
    expect(lines().map((line) => line.msg)).toContain('model_price_unknown');
    expect(logs.join('\n')).not.toContain(TEST_KEY);
  });

  it('hands the charge and the log line to Vercel’s waitUntil, from the request context Vercel provides', async () => {
    h.fake.script({ kind: 'reply', text: 'Kept alive.' });
    const kept: Promise<unknown>[] = [];
    const context = { waitUntil: (promise: Promise<unknown>) => kept.push(promise) };
    const { runtime, logs } = edgeIsolate(
      { OPENAI_API_KEY: TEST_KEY, OPENAI_BASE_URL: h.fake.url, CHAT_MODEL: 'gpt-4o-mini' },
      bundle.code,
      { [Symbol.for('@vercel/request-context')]: { get: () => context } },
    );
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': '203.0.113.9' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(await res.text()).toBe('Kept alive.');
    await eventually(() => kept.length > 0);
    await Promise.all(kept);
    expect(logs.map((line) => (JSON.parse(line) as { msg?: string }).msg)).toContain('chat');
  });

  it('speaks the UI message stream inside the edge runtime', async () => {
    const { runtime } = edgeIsolate({ OPENAI_API_KEY: TEST_KEY, OPENAI_BASE_URL: h.fake.url });
    h.fake.script({ kind: 'reply', text: 'UI from the edge.' });
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-real-ip': '203.0.113.9' },
      body: JSON.stringify({
        id: 'c',
        messages: [{ id: 'm', role: 'user', parts: [{ type: 'text', text: 'Hi' }] }],
        trigger: 'submit-message',
      }),
    });
    expect(res.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const body = await res.text();
    expect(body).toContain('"delta":"UI "');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('checks the magic bytes of an attachment inside the edge runtime', async () => {
    const { runtime } = edgeIsolate({ OPENAI_API_KEY: TEST_KEY, OPENAI_BASE_URL: h.fake.url });
    const png =
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==';
    const jpeg = '/9j/4AAQSkZJRgABAQAAAQABAAA=';
    const send = (data: string) =>
      runtime.dispatchFetch('https://proxy.test/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': '203.0.113.9' },
        body: JSON.stringify({
          id: 'c',
          messages: [
            {
              id: 'm',
              role: 'user',
              parts: [
                { type: 'file', mediaType: 'image/png', url: `data:image/png;base64,${data}` },
                { type: 'text', text: 'What is it?' },
              ],
            },
          ],
          trigger: 'submit-message',
        }),
      });
    const ok = await send(png);
    expect(ok.status).toBe(200);
    await ok.text();
    expect(h.fake.calls[0]?.body.messages?.at(-1)?.content).toContainEqual({
      type: 'image_url',
      image_url: { url: `data:image/png;base64,${png}` },
    });
    const mismatch = await send(jpeg);
    expect(mismatch.status).toBe(400);
    expect(await mismatch.text()).toContain('its content is image/jpeg');
  });

  it('answers 503 with a clean error, and logs the missing variable, when the key is not set', async () => {
    const { runtime, logs } = edgeIsolate({});
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', { method: 'POST' });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'proxy_not_configured' } });
    expect(logs.join('\n')).toContain('OPENAI_API_KEY is required');
  });

  it('rate-limits through Upstash REST from inside the edge runtime', async () => {
    const bridge = await startUpstashBridge();
    const { runtime } = edgeIsolate({
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: h.fake.url,
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: bridge.token,
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_PREFIX: uniquePrefix('edge').replace(/[^\w:.-]/g, '-'),
      // What is tested here is the REST path, not a store too slow to answer (tests/store-guard.test.ts): on a
      // starved machine the 300 ms default made some runs fall back to the per-instance limits.
      REDIS_TIMEOUT_MS: '5000',
    });
    // A different message each time: the same one could join the previous reply while its end is still being
    // written to the log (coalescing, tested in tests/replies.test.ts), which this test is not about.
    const send = (n: number) =>
      runtime.dispatchFetch('https://proxy.test/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': '203.0.113.99' },
        body: JSON.stringify({ messages: [{ role: 'user', content: `Hi ${n}` }] }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await send(i);
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(bridge.requests.count).toBeGreaterThan(0);
    await bridge.close();
  });

  it('refuses per-instance limits on Vercel: 503 and a log line naming the Redis variables', async () => {
    const { runtime, logs } = edgeIsolate({ OPENAI_API_KEY: TEST_KEY, VERCEL: '1' });
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', { method: 'POST' });
    expect(res.status).toBe(503);
    expect(logs.join('\n')).toMatch(
      /RATE_LIMIT_STORE has no shared store: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN/,
    );
  });
});

describe('the other edge functions', () => {
  it('api/models.ts tells the page its models and whether it may resume (RESUME), and only answers GET', async () => {
    const models = await buildEdgeBundle('./api/models');
    expect(models.nodeBuiltins).toEqual([]);
    const env = { OPENAI_API_KEY: TEST_KEY, ALLOWED_MODELS: 'gpt-4o-mini,gpt-4o', RESUME: 'on' };
    const { runtime } = edgeIsolate(env, models.code);
    const res = await runtime.dispatchFetch('https://proxy.test/api/models');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      models: ['gpt-4o-mini', 'gpt-4o'],
      default: 'gpt-4o-mini',
      resume: true,
    });
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const post = await runtime.dispatchFetch('https://proxy.test/api/models', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('api/chat/[id]/stream.ts answers resume and stop through Upstash REST: nothing running is a 204', async () => {
    const stream = await buildEdgeBundle('./api/chat/[id]/stream');
    expect(stream.nodeBuiltins).toEqual([]);
    const bridge = await startUpstashBridge();
    const { runtime } = edgeIsolate(
      {
        OPENAI_API_KEY: TEST_KEY,
        OPENAI_BASE_URL: h.fake.url,
        UPSTASH_REDIS_REST_URL: bridge.url,
        UPSTASH_REDIS_REST_TOKEN: bridge.token,
        RATE_LIMIT_PREFIX: uniquePrefix('edge-resume').replace(/[^\w:.-]/g, '-'),
        RESUME: 'on',
      },
      stream.code,
    );
    const url = 'https://proxy.test/api/chat/edge-chat-1/stream';
    const headers = { 'x-real-ip': '203.0.113.98' };
    const resumed = await runtime.dispatchFetch(url, { headers });
    expect(resumed.status).toBe(204);
    const stopped = await runtime.dispatchFetch(url, { method: 'DELETE', headers });
    expect(stopped.status).toBe(200);
    expect(await stopped.json()).toEqual({ stopped: false });
    await bridge.close();
  });
});
