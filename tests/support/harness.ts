import { afterAll, beforeEach } from 'vitest';
import { type FakeUpstream, type FakeUpstreamOptions, startFakeUpstream } from '../../fake-upstream';
import type { ChatHandler } from '../../lib/chat-handler';
import { type Config, loadConfig } from '../../lib/config';
import { type ChatProxy, createProxy } from '../../lib/create-proxy';
import type { Internal } from '../../lib/internal';
import { isRequestLine, type LogLine, type RequestLog } from '../../lib/log';
import type { TcpRedis } from '../../lib/redis/connect';
import { nodePlatform } from '../../server/node-platform';
import { tcpRedis } from '../../server/redis-tcp';
import { recordOutput, recordResponse, SECRETS } from './secret-scan';

/** Shaped like a real key so that key-shaped redaction is exercised too. */
export const TEST_KEY = SECRETS.upstreamKey;
export const TEST_IP = '203.0.113.10';

export interface Harness {
  readonly fake: FakeUpstream;
  readonly config: Config;
  readonly handler: ChatHandler;
  readonly logs: RequestLog[];
}

/**
 * A real fake upstream on loopback plus a handler wired to it exactly as production wires it (the base URL is
 * the only thing that differs). Registers its own cleanup, and resets the fake and the logs before each test.
 */
export async function startHarness(
  env: Record<string, string> = {},
  fakeOptions: FakeUpstreamOptions = {},
): Promise<Harness> {
  const fake = await startFakeUpstream({ apiKey: TEST_KEY, ...fakeOptions });
  const config = testConfig({ OPENAI_BASE_URL: fake.url, ...env });
  const logs: RequestLog[] = [];
  const handler = buildHandler(config, { logs });
  beforeEach(() => {
    fake.reset();
    logs.length = 0;
  });
  afterAll(() => fake.close());
  return { fake, config, handler, logs };
}

/** Test defaults: limits high enough to stay out of the way of tests that are not about them. */
export const TEST_ENV: Readonly<Record<string, string>> = {
  OPENAI_API_KEY: TEST_KEY,
  CHAT_MODEL: 'test-model',
  ALLOWED_MODELS: 'test-model,test-model-large',
  SYSTEM_PROMPT: 'You are a test assistant.',
  RATE_LIMIT_REQUESTS: '1000000',
  // Long enough that no test with a small limit straddles a window boundary (the sliding window would then let
  // a request through that the test expects refused); tests about windows set their own.
  RATE_LIMIT_WINDOW: '1 h',
  TOKEN_BUDGET: '100000000',
  MAX_STREAMS_PER_CALLER: '1000000',
};

export function testConfig(env: Record<string, string>): Config {
  return loadConfig({ ...TEST_ENV, ...env });
}

export interface BuildOptions {
  readonly logs?: RequestLog[];
  /** Lines about the proxy rather than a request (`model_price_unknown`). */
  readonly notices?: LogLine[];
  readonly waitUntil?: (promise: Promise<unknown>) => void;
  readonly _internal?: Partial<Internal>;
  /** The Node server's TCP Redis client unless a test wraps it. */
  readonly tcpRedis?: TcpRedis;
}

const proxies: ChatProxy[] = [];

/** Called after each test file (tests/support/per-file.ts). */
export async function closeProxies(): Promise<void> {
  for (const proxy of proxies.splice(0)) await proxy.close();
}

/**
 * Wires a handler through the one composition root, as api/chat.ts and the Node server do: stores come from the
 * config (REDIS_URL over TCP, Upstash REST, or memory), and the client IP from `x-real-ip`, as on Vercel.
 */
export function buildHandler(config: Config, options: BuildOptions = {}): ChatHandler {
  const logs = options.logs;
  const proxy = createProxy(config, {
    clientIp: (req) => req.headers.get('x-real-ip') ?? undefined,
    tcpRedis: options.tcpRedis ?? tcpRedis,
    // The Node server's way to the upstream (undici's pooled request); the edge tests run the `fetch` one.
    upstreamTransport: nodePlatform.upstreamTransport,
    ...(nodePlatform.sha256 && { sha256: nodePlatform.sha256 }),
    // And its Response class for streamed replies (srvx's), which tests then read as any Response.
    ...(nodePlatform.streamResponse && { streamResponse: nodePlatform.streamResponse }),
    ...(options.waitUntil ? { waitUntil: options.waitUntil } : {}),
    ...(options._internal ? { _internal: options._internal } : {}),
    // Every log line is scanned for secrets; tests that do not look at them keep them off the console.
    log: (line) => {
      recordOutput(JSON.stringify(line));
      if (isRequestLine(line)) logs?.push(line);
      else options.notices?.push(line);
    },
  });
  proxies.push(proxy);
  return async (req) => recordResponse(await proxy.handler(req));
}

export function chatRequest(
  body: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Request {
  return new Request('http://proxy.test/api/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-real-ip': TEST_IP, ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

/** A chat request whose body is a stream the test controls (a slow, stuck or endless upload). */
export function streamedRequest(
  body: ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Request {
  return new Request('http://proxy.test/api/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-real-ip': TEST_IP, ...headers },
    body,
    duplex: 'half',
  } as RequestInit);
}

export const userSays = (content: string) => ({ messages: [{ role: 'user' as const, content }] });

/** Waits until `check` holds, polling briefly; for things that happen on another socket (an abort reaching the fake). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
