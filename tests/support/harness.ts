import { afterAll, beforeEach } from 'vitest';
import { type FakeUpstream, type FakeUpstreamOptions, startFakeUpstream } from '../../fake-upstream';
import { type ChatHandler, createChatHandler } from '../../lib/chat-handler';
import { type Config, loadConfig } from '../../lib/config';
import type { RequestLog } from '../../lib/log';
import { createUpstream } from '../../lib/upstream';

/** Shaped like a real key so that key-shaped redaction is exercised too. */
export const TEST_KEY = 'sk-test-SECRET-0123456789abcdef';

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
export async function useHarness(
  env: Record<string, string> = {},
  fakeOptions: FakeUpstreamOptions = {},
): Promise<Harness> {
  const fake = await startFakeUpstream({ apiKey: TEST_KEY, ...fakeOptions });
  const config = loadConfig({
    OPENAI_API_KEY: TEST_KEY,
    OPENAI_BASE_URL: fake.url,
    CHAT_MODEL: 'test-model',
    ALLOWED_MODELS: 'test-model,test-model-large',
    SYSTEM_PROMPT: 'You are a test assistant.',
    ...env,
  });
  const logs: RequestLog[] = [];
  const handler = createChatHandler({
    config,
    upstream: createUpstream(config),
    log: (line) => logs.push(line),
  });
  beforeEach(() => {
    fake.reset();
    logs.length = 0;
  });
  afterAll(() => fake.close());
  return { fake, config, handler, logs };
}

export function chatRequest(
  body: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Request {
  return new Request('http://proxy.test/api/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

export const userSays = (content: string) => ({ messages: [{ role: 'user', content }] });

/** Waits until `check` holds, polling briefly; for things that happen on another socket (an abort reaching the fake). */
export async function eventually(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
