import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { faults } from '../fake-upstream';
import { type Config, ConfigError } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { isRequestLine, type RequestLog } from '../lib/log';
import { chatPage } from '../server/chat-page';
import { createHostCheck } from '../server/host-check';
import { createProxyMetrics } from '../server/metrics';
import { withMetrics } from '../server/metrics-route';
import { startObservability } from '../server/observability';
import { routes } from '../server/routes';
import { loadServerConfig } from '../server/server-config';
import { eventually, startHarness, testConfig } from './support/harness';
import { recordOutput, recordResponse } from './support/secret-scan';

const TOKEN = 'metrics-token-0123456789';
const h = await startHarness();
/**
 * One model priced, so the cost counter has an exact value to check: $2.50 in and $10 out per million tokens, that
 * is 2.5 and 10 micro-dollars a token. The others stay unpriced (their cost is `unknown`).
 */
const PRICES = JSON.stringify({ 'test-model-large': { input: 2.5, output: 10 } });
// Fallbacks, quick retries, and one request per caller: every row of the mix below is one caller (one IP).
const config = testConfig({
  OPENAI_BASE_URL: h.fake.url,
  FALLBACK_MODELS: 'backup-model',
  UPSTREAM_MAX_ATTEMPTS: '2',
  RETRY_BASE_DELAY_MS: '5',
  RETRY_MAX_DELAY_MS: '20',
  RATE_LIMIT_REQUESTS: '1',
  MODEL_PRICES: PRICES,
});
const CONFIGURED_MODELS = ['test-model', 'test-model-large', 'backup-model'];

/** A proxy with its metrics, as the Node server composes them (server/observability.ts): /metrics before the routes. */
function metered(proxyConfig: Config) {
  const lines: RequestLog[] = [];
  const meter = createProxyMetrics({ models: CONFIGURED_MODELS });
  const built = createProxy(proxyConfig, {
    clientIp: (req) => req.headers.get('x-real-ip') ?? undefined,
    log: meter.logger((line) => {
      recordOutput(JSON.stringify(line));
      if (isRequestLine(line)) lines.push(line);
    }),
  });
  meter.watch(() => built.readings());
  const app = withMetrics(
    meter.registry,
    TOKEN,
    routes(built.handler, chatPage(), createHostCheck([], undefined)),
  );
  return { proxy: built, metrics: meter, logs: lines, server: app };
}

const { proxy, metrics, logs, server } = metered(config);
afterAll(() => proxy.close());
beforeEach(() => {
  logs.length = 0;
});

let ip = 0;
/** A chat from a caller of its own, read to the end. */
async function chat(body: unknown, callerIp = `198.51.100.${++ip}`, app = server): Promise<Response> {
  const res = await send(body, callerIp, app);
  await res.text();
  return res;
}

/** A chat from a caller of its own, its body left for the test to read. */
async function send(body: unknown, callerIp = `198.51.100.${++ip}`, app = server): Promise<Response> {
  return recordResponse(
    await app(
      new Request('http://127.0.0.1/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': callerIp },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    ),
  );
}
const hello = (text = 'Hello') => ({ messages: [{ role: 'user', content: text }] });

/** `null`: no authorization header at all. */
async function scrape(authorization: string | null = `Bearer ${TOKEN}`, app = server): Promise<Response> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  return recordResponse(await app(new Request('http://127.0.0.1/metrics', { headers })));
}

/** The scrape as `name{label="value",...}` (labels sorted) → value, one entry per series. */
async function series(app = server): Promise<Map<string, number>> {
  const res = await scrape(`Bearer ${TOKEN}`, app);
  expect(res.status).toBe(200);
  const found = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(
      ([, k, v]) => `${k}="${v}"`,
    );
    found.set(`${match[1]}{${labels.sort().join(',')}}`, Number(match[3]));
  }
  return found;
}

describe('GET /metrics', () => {
  it('after a mix of replies, a retry, a fallback, an upstream failure and refusals: exact counts', async () => {
    h.fake.script(
      { kind: 'reply', text: 'One.' }, // A: served at once
      faults.serverError(500), // B: retried, then served
      { kind: 'reply', text: 'Two.' },
      faults.modelNotFound('test-model'), // C: served by the fallback model
      { kind: 'reply', text: 'Three.' },
      faults.serverError(500), // D: both attempts on both models fail (4 attempts, 3 of them retries)
      faults.serverError(500),
      faults.serverError(500),
      faults.serverError(500),
      { kind: 'reply', text: 'Four.' }, // E: served; its second request is refused (429)
      // G: the one priced model: 1,000 × $2.50 + 200 × $10 per million = $0.0045
      { kind: 'reply', text: 'Five.', usage: { promptTokens: 1_000, completionTokens: 200 } },
    );
    expect((await chat(hello('A'))).status).toBe(200);
    expect((await chat(hello('B'))).status).toBe(200);
    const fallback = await chat(hello('C'));
    expect(fallback.headers.get('x-chat-fallback')).toBe('model');
    expect((await chat(hello('D'))).status).toBe(502);
    expect((await chat(hello('E'), '198.51.100.200')).status).toBe(200);
    expect((await chat(hello('E again'), '198.51.100.200')).status).toBe(429);
    expect((await chat('{"messages": ')).status).toBe(400); // F: not even JSON: refused before any model
    expect((await chat({ ...hello('G'), model: 'test-model-large' })).status).toBe(200);
    await eventually(() => logs.length === 8);
    // D ended without a reply: its line still says how often the upstream was tried.
    expect(logs.find((l) => l.status === 502)).toMatchObject({ outcome: 'rejected', attempts: 4 });

    const s = await series();
    const at = (key: string) => s.get(key) ?? 0;
    expect(at('chat_requests_total{model="test-model",outcome="complete",status="200"}')).toBe(3);
    expect(at('chat_requests_total{model="backup-model",outcome="complete",status="200"}')).toBe(1);
    expect(at('chat_requests_total{model="test-model",outcome="rejected",status="502"}')).toBe(1);
    expect(at('chat_requests_total{model="test-model",outcome="rejected",status="429"}')).toBe(1);
    expect(at('chat_requests_total{model="none",outcome="rejected",status="400"}')).toBe(1);
    expect(at('chat_requests_total{model="test-model-large",outcome="complete",status="200"}')).toBe(1);
    expect(sum(s, 'chat_requests_total')).toBe(8);
    expect(at('chat_errors_total{code="upstream_unavailable"}')).toBe(1);
    expect(at('chat_errors_total{code="rate_limited"}')).toBe(1);
    expect(sum(s, 'chat_errors_total')).toBe(3);
    expect(at('chat_ratelimit_refusals_total{reason="rate_limited"}')).toBe(1);
    expect(sum(s, 'chat_ratelimit_refusals_total')).toBe(1);
    expect(at('chat_fallbacks_total{kind="model"}')).toBe(1);
    expect(at('chat_upstream_retries_total{}')).toBe(5); // B's retry, C's fallback attempt, D's three
    expect(sum(s, 'chat_ratelimit_store_unavailable_total')).toBe(0);

    expect(at('chat_time_to_first_token_seconds_count{model="test-model"}')).toBe(3);
    expect(at('chat_time_to_first_token_seconds_count{model="backup-model"}')).toBe(1);
    expect(at('chat_time_to_first_token_seconds_bucket{le="+Inf",model="test-model"}')).toBe(3);
    expect(at('chat_request_duration_seconds_count{model="test-model"}')).toBe(5);
    expect(at('chat_request_duration_seconds_count{model="backup-model"}')).toBe(1);
    expect(at('chat_request_duration_seconds_count{model="none"}')).toBe(1);
    expect(at('chat_request_duration_seconds_count{model="test-model-large"}')).toBe(1);

    const tokens = (model: string, field: 'prompt_tokens' | 'completion_tokens') =>
      logs.filter((l) => l.model === model).reduce((n, l) => n + (l.usage?.[field] ?? 0), 0);
    expect(tokens('test-model', 'completion_tokens')).toBeGreaterThan(0);
    for (const model of ['test-model', 'backup-model']) {
      expect(at(`chat_tokens_total{kind="input",model="${model}"}`)).toBe(tokens(model, 'prompt_tokens'));
      expect(at(`chat_tokens_total{kind="output",model="${model}"}`)).toBe(
        tokens(model, 'completion_tokens'),
      );
    }
    expect(at('chat_tokens_total{kind="input",model="test-model-large"}')).toBe(1_000);
    expect(at('chat_tokens_total{kind="output",model="test-model-large"}')).toBe(200);
    // Priced: G alone, to the micro-dollar. Unpriced: A, B and E on test-model, C on the fallback; D got no reply.
    expect(at('chat_cost_usd_total{model="test-model-large"}')).toBe(0.0045);
    expect(sum(s, 'chat_cost_usd_total')).toBe(0.0045);
    expect(logs.find((l) => l.model === 'test-model-large')?.cost_usd).toBe(0.0045);
    expect(at('chat_cost_unknown_total{model="test-model"}')).toBe(3);
    expect(at('chat_cost_unknown_total{model="backup-model"}')).toBe(1);
    expect(sum(s, 'chat_cost_unknown_total')).toBe(4);
    expect(at('chat_streams_in_flight{}')).toBe(0);
    expect(at('chat_queue_waiting{}')).toBe(0);
  });

  it('counts retries and tokens where they were made: not again for a follower or a cache hit, nor for a notice line', async () => {
    const own = createProxyMetrics({ models: CONFIGURED_MODELS, processMetrics: false });
    const passed: string[] = [];
    const log = own.logger((line) => passed.push(line.msg));
    const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };
    const line = {
      msg: 'chat',
      model: 'test-model',
      level: 'info',
      duration_ms: 5,
      attempts: 3,
      usage,
    } as const;
    log({ ...line, request_id: 'a', status: 200, outcome: 'complete', coalesced: 'leader' });
    log({ ...line, request_id: 'b', status: 200, outcome: 'complete', coalesced: 'follower' });
    log({ ...line, request_id: 'c', status: 200, outcome: 'complete', cache: 'hit' });
    log({
      ...line,
      request_id: 'd',
      level: 'error',
      status: 502,
      outcome: 'rejected',
      coalesced: 'follower',
    });
    log({ level: 'warn', msg: 'model_price_unknown', model: 'test-model', detail: 'no price' });
    const text = await own.registry.metrics();
    expect(text).toMatch(/^chat_upstream_retries_total 2$/m); // the leader's two, once
    expect(text).toMatch(/^chat_tokens_total\{model="test-model",kind="output"\} 20$/m);
    expect(text).toMatch(/^chat_requests_total\{[^}]*status="200"[^}]*\} 3$/m);
    expect(passed).toEqual(['chat', 'chat', 'chat', 'chat', 'model_price_unknown']);
  });

  // With the reply log (coalescing, the default) a leader streams the reply; without it, the request does itself.
  const direct = metered(testConfig({ OPENAI_BASE_URL: h.fake.url, COALESCE: 'off', MODEL_PRICES: PRICES }));
  afterAll(() => direct.proxy.close());

  it.each([
    ['a coalescing leader', { server, logs }],
    ['a reply streamed directly', direct],
  ])('counts %s as a stream from its first token to its end, not while it waits for it', async (_, on) => {
    const [first, rest] = [gate(), gate()];
    h.fake.script({
      kind: 'held',
      until: first.open,
      answer: { kind: 'pause', afterTokens: 1, until: rest.open, text: 'At last.' },
    });
    const streams = async () => (await series(on.server)).get('chat_streams_in_flight{}');
    const pending = chat(hello('Held'), undefined, on.server);
    await eventually(() => h.fake.calls.length === 1);
    expect(await streams()).toBe(0); // asked upstream, but nothing is streaming yet
    first.release();
    await eventually(async () => (await streams()) === 1);
    rest.release();
    expect((await pending).status).toBe(200);
    await eventually(() => on.logs.length === 1);
    expect(await streams()).toBe(0);
  });

  it('observes each queued request’s wait, and counts it as waiting, not as a stream', async () => {
    const queued = metered(
      testConfig({ OPENAI_BASE_URL: h.fake.url, UPSTREAM_MAX_CONCURRENT: '1', MODEL_PRICES: PRICES }),
    );
    try {
      const rest = gate();
      h.fake.script({ kind: 'pause', afterTokens: 1, until: rest.open, text: 'First reply.' });
      const first = await send(hello('First'), undefined, queued.server);
      const firstText = first.text(); // read it as it comes, so it can finish and free the slot
      const second = chat(hello('Second'), undefined, queued.server);
      await eventually(() => queued.proxy.readings().queued === 1);
      const s = await series(queued.server);
      expect(s.get('chat_queue_waiting{}')).toBe(1);
      expect(s.get('chat_streams_in_flight{}')).toBe(1); // the first; the second waits its turn
      rest.release();
      expect(await firstText).toBe('First reply.');
      expect((await second).status).toBe(200);
      await eventually(() => queued.logs.length === 2);
      // Only the second request waited in line: one wait observed, and only its log line says how long.
      const waits = queued.logs.map((l) => l.queue_wait_ms);
      expect(waits.filter((ms) => ms !== undefined)).toHaveLength(1);
      expect(waits[0]).toBeUndefined();
      const after = await series(queued.server);
      expect(after.get('chat_queue_wait_seconds_count{}')).toBe(1);
      expect(after.get('chat_queue_waiting{}')).toBe(0);
      expect(after.get('chat_streams_in_flight{}')).toBe(0);
    } finally {
      await queued.proxy.close();
    }
  });

  it('labels hold only bounded values: no caller, no IP, no request id, and models only from the config', async () => {
    await chat(hello('One more, for the labels'));
    await eventually(() => logs.length === 1);
    // A line naming a model the config does not list (it cannot happen today; the label stays bounded if it does).
    metrics.logger(() => {})({ ...(logs[0] as RequestLog), model: 'gpt-unlisted-by-anyone' });
    const res = await scrape();
    const text = await res.text();
    const keys = [...(await series()).keys()];
    const labelNames = new Set(keys.flatMap((key) => [...key.matchAll(/(\w+)="/g)].map((m) => m[1])));
    // Ours, then Node's process metrics' own (heap space, resource type, Node version): fixed sets, all of them.
    const bounded = [
      'code',
      'decision',
      'kind',
      'le',
      'model',
      'outcome',
      'reason',
      'result',
      'role',
      'status',
    ];
    const processLabels = ['major', 'minor', 'patch', 'space', 'type', 'version'];
    for (const name of labelNames) expect([...bounded, ...processLabels]).toContain(name);
    const ours = keys.filter((key) => key.startsWith('chat_'));
    const models = new Set(ours.flatMap((key) => [...key.matchAll(/model="([^"]*)"/g)].map((m) => m[1])));
    for (const model of models) expect([...CONFIGURED_MODELS, 'other', 'none']).toContain(model);
    expect(models).toContain('other');
    expect(text).not.toContain('gpt-unlisted-by-anyone');
    // Nothing that tells callers or requests apart appears anywhere in the scrape, in any metric.
    for (const line of logs) {
      expect(text).not.toContain(line.request_id);
      expect(text).not.toContain(line.caller ?? '-');
    }
    expect(text).not.toMatch(/198\.51\.100\./);
  });

  it('answers only with the token: none or a wrong one is a 401, compared in constant time', async () => {
    expect((await scrape(null)).status).toBe(401);
    expect((await scrape('Bearer wrong-token-0123456789')).status).toBe(401);
    expect((await scrape(`Bearer ${TOKEN}x`)).status).toBe(401);
    expect((await scrape(`Basic ${TOKEN}`)).status).toBe(401);
    const refused = await scrape(null);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await ok.text()).toContain('# TYPE chat_requests_total counter');
  });

  it('as the Node server wires it: on with METRICS_TOKEN (process metrics too), off without (404)', async () => {
    const on = startObservability(loadServerConfig({ METRICS_TOKEN: TOKEN }), config);
    const withToken = on.routes(proxy, routes(proxy.handler, chatPage(), createHostCheck([], undefined)));
    const scraped = await scrape(`Bearer ${TOKEN}`, withToken);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toMatch(/^process_cpu_seconds_total /m);
    expect(on.describe('http://127.0.0.1:3000/')).toEqual([
      'Metrics at http://127.0.0.1:3000/metrics (Authorization: Bearer $METRICS_TOKEN).',
    ]);

    const off = startObservability(loadServerConfig({}), config);
    const without = off.routes(proxy, routes(proxy.handler, chatPage(), createHostCheck([], undefined)));
    expect((await scrape(`Bearer ${TOKEN}`, without)).status).toBe(404);
    expect(off.describe('http://127.0.0.1:3000/')).toEqual([]);
  });

  it('refuses a METRICS_TOKEN short enough to guess, naming the variable', () => {
    expect(() => loadServerConfig({ METRICS_TOKEN: 'short' })).toThrow(ConfigError);
    expect(() => loadServerConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN must be at least 16/);
  });
});

function sum(s: Map<string, number>, name: string): number {
  let total = 0;
  for (const [key, value] of s) if (key.startsWith(`${name}{`)) total += value;
  return total;
}

/** A promise the test opens when it chooses: what a scripted `held` or `pause` reply waits for. */
function gate(): { open: Promise<void>; release: () => void } {
  let release = () => {};
  const open = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { open, release };
}
