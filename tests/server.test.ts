import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoReply } from '../fake-upstream/behaviours';
import { eventually, startHarness, TEST_KEY } from './support/harness';
import { freePort, npmRun } from './support/processes';
import { REDIS_TEST_URL } from './support/redis';

const h = await startHarness();

async function post(
  port: number,
  content: string,
  accept = 'text/plain',
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify({ messages: [{ role: 'user', content }] }),
    ...(signal ? { signal } : {}),
  });
}

describe('the Node server, started the way a user starts it', () => {
  it('npm run dev without a key says it uses the demo upstream and streams demo replies token by token', async () => {
    const port = await freePort();
    const dev = npmRun('dev', { PORT: String(port) });
    await eventually(() => dev.output().stdout.includes('listening on'), 15_000);
    expect(dev.output().stdout).toMatch(/No OPENAI_API_KEY set: using the built-in demo upstream/);
    expect(dev.output().stdout).toMatch(/Rate limits: 20 requests \/ 60 s .* in-memory, this process only/);
    expect(dev.output().stdout).toContain(`http://127.0.0.1:${port}/`);

    const started = performance.now();
    const res = await post(port, 'Hello proxy');
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    if (!reader) throw new Error('no body');
    const decoder = new TextDecoder();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(performance.now() - started);
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toBe(demoReply('Hello proxy'));
    // Streamed, not buffered: tokens arrive spread over the reply, not all at the end.
    expect(arrivals.length).toBeGreaterThan(10);
    expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThan(200);
    await eventually(() => dev.output().stdout.includes('"outcome":"complete"'));
  });

  it('npm start refuses to run without a key, naming the variable', async () => {
    const start = npmRun('start', { PORT: String(await freePort()) });
    expect(await start.exited).not.toBe(0);
    expect(start.output().stderr).toContain('OPENAI_API_KEY is required');
  });

  it('npm start reads its settings from an env file', async () => {
    const port = await freePort();
    const file = join(mkdtempSync(join(tmpdir(), 'acp-env-')), '.env');
    writeFileSync(
      file,
      `OPENAI_API_KEY=${TEST_KEY}\nOPENAI_BASE_URL=${h.fake.url}\nRATE_LIMIT_STORE=memory\nPORT=${port}\n`,
    );
    const start = npmRun('start', { ENV_FILE: file });
    await eventually(() => start.output().stdout.includes('listening on'), 15_000);
    expect(start.output().stdout).toContain('Read settings from .env');
    expect(start.output().stdout).toContain(`127.0.0.1:${port}`);
  });

  it('npm start refuses per-process rate limits unless asked for, naming the variables', async () => {
    const start = npmRun('start', { PORT: String(await freePort()), OPENAI_API_KEY: TEST_KEY });
    expect(await start.exited).not.toBe(0);
    expect(start.output().stderr).toMatch(
      /RATE_LIMIT_STORE has no shared store: set UPSTASH_REDIS_REST_URL.*REDIS_URL/,
    );
  });

  it('npm start serves the real upstream, and a client disconnect over HTTP aborts it', async () => {
    const port = await freePort();
    const start = npmRun('start', {
      PORT: String(port),
      HOST: '127.0.0.1',
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'server-model',
      REDIS_URL: REDIS_TEST_URL,
      RATE_LIMIT_PREFIX: `server-test-${process.pid}`,
    });
    await eventually(() => start.output().stdout.includes('listening on'), 15_000);
    expect(start.output().stdout).not.toContain('demo');
    expect(start.output().stdout).toContain('Redis (REDIS_URL, TCP), shared by every instance');

    h.fake.script({ kind: 'reply', text: 'Served by the node server.' });
    const res = await post(port, 'Hi');
    expect(await res.text()).toBe('Served by the node server.');
    expect(h.fake.calls[0]?.body.model).toBe('server-model');

    h.fake.script({ kind: 'stall', afterTokens: 1 });
    const client = new AbortController();
    const streaming = await post(port, 'Hi', 'text/event-stream', client.signal);
    await streaming.body?.getReader().read();
    client.abort();
    await eventually(() => h.fake.calls[1]?.aborted === true);
    const { stdout, stderr } = start.output();
    expect(stdout + stderr).not.toContain(TEST_KEY);
  });
});
