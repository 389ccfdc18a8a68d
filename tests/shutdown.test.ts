import { afterEach, describe, expect, it } from 'vitest';
import { type ChatProxy, createProxy } from '../lib/create-proxy';
import { isRequestLine, type RequestLog } from '../lib/log';
import { tcpRedis } from '../server/redis-tcp';
import { chatRequest, eventually, startHarness, testConfig, userSays } from './support/harness';
import { recordOutput, recordResponse } from './support/secret-scan';
import { chatLikeUseChat, userMessage } from './support/ui';

/**
 * `drain`, as the Node server calls it on SIGTERM, through the one composition root: replies that finish within
 * the grace are untouched, and the ones still open at its end get their protocol's end marker, a log line and a
 * charge. (tests/server.test.ts does the same to the real process.)
 */
const h = await startHarness();
const RESTARTING = 'The server is restarting. Please send your message again.';

let proxies: ChatProxy[] = [];
afterEach(async () => {
  for (const proxy of proxies) await proxy.close();
  proxies = [];
});

/** A proxy of its own per test, since a drain is for good. */
function startProxy() {
  const logs: RequestLog[] = [];
  const proxy = createProxy(testConfig({ OPENAI_BASE_URL: h.fake.url }), {
    clientIp: (req) => req.headers.get('x-real-ip') ?? undefined,
    tcpRedis,
    log: (line) => {
      recordOutput(JSON.stringify(line));
      if (isRequestLine(line)) logs.push(line);
    },
  });
  proxies.push(proxy);
  const handler = async (req: Request) => recordResponse(await proxy.handler(req));
  return { proxy, handler, logs };
}

const plainText = (content: string) => chatRequest(userSays(content), { headers: { accept: 'text/plain' } });

describe('draining the proxy for a shutdown', () => {
  it('resolves at once when nothing is in flight', async () => {
    const { proxy } = startProxy();
    await proxy.drain(60_000);
  });

  it('waits for a reply that finishes within the grace, and for its log line, and leaves it untouched', async () => {
    const { proxy, handler, logs } = startProxy();
    h.fake.script({ kind: 'slow-first-token', delayMs: 50, text: 'Finished in time.' });
    const answering = handler(plainText('Hi'));
    // What had been logged when the drain let go: the reply's line must be in, or a server would exit without it.
    const loggedAtDrain = proxy.drain(60_000).then(() => [...logs]);
    const res = await answering;
    expect(await res.text()).toBe('Finished in time.');
    expect(await loggedAtDrain).toMatchObject([{ status: 200, outcome: 'complete' }]);
  });

  it('ends the replies still open at the deadline with their end marker, and logs and charges them', async () => {
    const { proxy, handler, logs } = startProxy();
    h.fake.script({ kind: 'stall', afterTokens: 1, text: 'Half a reply' }, { kind: 'stall', afterTokens: 1 });
    const ui = chatLikeUseChat(handler, [userMessage('Hi')]);
    await eventually(() => h.fake.calls[0]?.tokensSent === 1);
    // Another prompt: the same one would follow the first reply rather than open a second.
    const text = await handler(plainText('Hello'));
    expect(text.status).toBe(200);

    await proxy.drain(50);
    // useChat (its own reader) keeps the partial text and reports the error.
    expect(await ui).toMatchObject({ text: 'Half ', errors: [RESTARTING] });
    const plain = await text.text();
    expect(plain.endsWith(`\n[error] ${RESTARTING}\n`)).toBe(true);
    await eventually(() => h.fake.calls.filter((call) => call.aborted).length === 2);
    expect(logs).toHaveLength(2);
    for (const line of logs) {
      // A restart is routine: a warning, not an error that pages someone. The charge happened before the line.
      expect(line).toMatchObject({
        status: 200,
        outcome: 'error',
        error_code: 'server_restarting',
        level: 'warn',
      });
      expect(line.budget_error).toBeUndefined();
    }
  });

  it('answers a request still waiting for its first token at the deadline with 503 server_restarting', async () => {
    const { proxy, handler, logs } = startProxy();
    h.fake.script({ kind: 'slow-first-token', delayMs: 5_000 });
    const answering = handler(plainText('Hi'));
    await eventually(() => h.fake.calls.length === 1);
    await proxy.drain(50);
    const res = await answering;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ error: { code: 'server_restarting', message: RESTARTING } });
    await eventually(() => h.fake.calls[0]?.aborted === true);
    expect(logs).toMatchObject([{ status: 503, outcome: 'rejected', error_code: 'server_restarting' }]);
  });

  it('refuses a request that arrives after the drain, without calling the upstream', async () => {
    const { proxy, handler } = startProxy();
    await proxy.drain(50);
    const res = await handler(plainText('Hi'));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'server_restarting' } });
    expect(h.fake.calls).toHaveLength(0);
  });
});
