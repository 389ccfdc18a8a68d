import { connect } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, faults, openAiDuration, startFakeUpstream } from '../fake-upstream';

// The fake upstream's capacity (fake-upstream/capacity.ts), over real HTTP: what a queue in the proxy will be tested against.

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await startFakeUpstream();
});
beforeEach(() => fake.reset());
afterAll(() => fake.close());

/** A streamed chat request as the proxy sends it. */
function chat(signal?: AbortSignal): Promise<Response> {
  return fetch(`${fake.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-anything' },
    body: JSON.stringify({
      model: 'test-model',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    }),
    signal,
  });
}

/** A response with its body read to the end, so the fake's stream is over. */
async function chatDone(): Promise<{ res: Response; text: string; at: number }> {
  const res = await chat();
  const text = await res.text();
  return { res, text, at: performance.now() };
}

function gate() {
  let open = () => {};
  const until = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { until, open };
}

/** Polls until `done` holds; a deadline only to fail with a message instead of the test timeout. */
async function waitFor(done: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Sends requests 50 ms apart until one is accepted; returns it and when it came back. */
async function untilAccepted(): Promise<{ res: Response; text: string; at: number }> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const answer = await chatDone();
    if (answer.res.status === 200) return answer;
    expect(answer.res.status).toBe(429);
    if (performance.now() > deadline) throw new Error('Never accepted again');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** OpenAI's duration format (`850ms`, `2s`, `1.5s`, `1m30s`, `6m0s`) in ms; throws on anything else. */
function parseDuration(text: string | null): number {
  const ms = /^(\d+)ms$/.exec(text ?? '');
  if (ms) return Number(ms[1]);
  const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)$/.exec(text ?? '');
  if (!parts) throw new Error(`Not an OpenAI duration: ${text}`);
  return (Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3])) * 1000;
}

const RATE_HEADERS = [
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
];

async function expectRateLimited(res: Response, retryAfter?: string): Promise<void> {
  expect(res.status).toBe(429);
  if (retryAfter !== undefined) expect(res.headers.get('retry-after')).toBe(retryAfter);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  for (const name of RATE_HEADERS) expect(res.headers.get(name), name).not.toBeNull();
  const body = (await res.json()) as { error: Record<string, unknown> };
  expect(body.error).toMatchObject({ type: 'requests', param: null, code: 'rate_limit_exceeded' });
  expect(body.error.message).toMatch(/^Rate limit reached/);
}

describe('the fake upstream’s capacity', () => {
  it('is off unless configured: no refusals and no rate-limit headers', async () => {
    const go = gate();
    fake.script(
      ...Array.from({ length: 6 }, () => ({
        kind: 'held' as const,
        until: go.until,
        answer: { kind: 'reply' as const },
      })),
    );
    const pending = Array.from({ length: 6 }, () => chat());
    await waitFor(() => fake.calls.length === 6, 'six calls');
    expect(fake.inFlight).toBe(6);
    go.open();
    for (const res of await Promise.all(pending)) {
      expect(res.status).toBe(200);
      await res.text();
      for (const name of RATE_HEADERS) expect(res.headers.get(name)).toBeNull();
    }
    expect(fake.rejected).toBe(0);
  });

  it('maxConcurrent: at most N streams open, the rest refused at once with OpenAI’s 429', async () => {
    fake.setCapacity({ maxConcurrent: 3 });
    const go = gate();
    // Three held behaviours: the two refused requests must not take any of them.
    fake.script(
      ...Array.from({ length: 3 }, () => ({
        kind: 'held' as const,
        until: go.until,
        answer: { kind: 'reply' as const },
      })),
    );
    const early: Response[] = [];
    const pending = Array.from({ length: 5 }, () =>
      chat().then((res) => {
        early.push(res);
        return res;
      }),
    );
    // The refusals come back while the three accepted streams are still held (they have not even sent headers).
    await waitFor(() => early.length === 2 && fake.calls.length === 3, 'two answers and three calls');
    expect(fake.inFlight).toBe(3);
    expect(fake.rejected).toBe(2);
    for (const res of early) await expectRateLimited(res, '1');
    go.open();
    const answers = await Promise.all(pending);
    const accepted = answers.filter((res) => res.status === 200);
    expect(accepted).toHaveLength(3);
    for (const res of accepted) expect(await res.text()).toContain('data: [DONE]');
    expect(fake.peakInFlight).toBe(3);

    await waitFor(() => fake.inFlight === 0, 'the streams to close');
    const again = await Promise.all(Array.from({ length: 3 }, () => chatDone()));
    expect(again.map((a) => a.res.status)).toEqual([200, 200, 200]);
    expect(fake.rejected).toBe(2);
    expect(fake.rejectedAt).toHaveLength(2);
    expect(fake.peakInFlight).toBe(3);
  });

  it('an aborted client frees its slot, and a refusal leaves the script to the next accepted call', async () => {
    fake.setCapacity({ maxConcurrent: 1, retryAfterSeconds: 3 });
    const never = gate();
    fake.script(
      { kind: 'held', until: never.until, answer: { kind: 'reply' } },
      { kind: 'reply', text: 'scripted' },
    );
    const abort = new AbortController();
    const first = chat(abort.signal).catch((error: unknown) => error);
    await waitFor(() => fake.inFlight === 1 && fake.calls.length === 1, 'the first stream');

    await expectRateLimited(await chat(), '3');
    abort.abort();
    expect(await first).toBeInstanceOf(Error);
    await waitFor(() => fake.inFlight === 0, 'the aborted stream to free its slot');
    expect(fake.calls[0]?.aborted).toBe(true);

    const next = await chatDone();
    expect(next.res.status).toBe(200);
    expect(next.text).toContain('scripted');
    expect(fake.rejected).toBe(1);
    expect(fake.peakInFlight).toBe(1);
  });

  it('requestsPerWindow: beyond the limit 429 until the window ends, then accepted again', async () => {
    // Three requests in a row normally take milliseconds; should a busy machine stall them past the window, the
    // third is rightly accepted, and the scenario starts again with a fresh window.
    let startedAt = 0;
    let third: Response | undefined;
    for (let attempt = 0; attempt < 5 && third === undefined; attempt++) {
      fake.setCapacity({ requestsPerWindow: { limit: 2, windowMs: 1000 } });
      startedAt = performance.now();
      expect((await chatDone()).res.status).toBe(200);
      expect((await chatDone()).res.status).toBe(200);
      const res = await chat();
      if (res.status === 429) third = res;
      else {
        expect(performance.now() - startedAt).toBeGreaterThanOrEqual(1000);
        await res.text();
      }
    }
    if (!third) throw new Error('Never refused: five windows each ended before their third request');
    expect(third.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(third.headers.get('x-ratelimit-limit-requests')).toBe('2');
    const resetMs = parseDuration(third.headers.get('x-ratelimit-reset-requests'));
    expect(resetMs).toBeGreaterThan(0);
    expect(resetMs).toBeLessThanOrEqual(1000);
    await expectRateLimited(third, '1');
    expect(fake.rejected).toBe(1);

    const later = await untilAccepted();
    expect(later.at - startedAt).toBeGreaterThanOrEqual(1000);
    expect(later.res.headers.get('x-ratelimit-remaining-requests')).toBe('1');
  });

  it('sends OpenAI’s rate-limit headers on every chat response, with the remaining count going down', async () => {
    fake.setCapacity({ requestsPerWindow: { limit: 5, windowMs: 60_000 } });
    const remaining: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { res } = await chatDone();
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('5');
      remaining.push(Number(res.headers.get('x-ratelimit-remaining-requests')));
      const reset = parseDuration(res.headers.get('x-ratelimit-reset-requests'));
      expect(reset).toBeGreaterThan(0);
      expect(reset).toBeLessThanOrEqual(60_000);
      const limitTokens = Number(res.headers.get('x-ratelimit-limit-tokens'));
      expect(limitTokens).toBeGreaterThan(0);
      expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThanOrEqual(limitTokens);
      expect(parseDuration(res.headers.get('x-ratelimit-reset-tokens'))).toBeGreaterThanOrEqual(0);
    }
    expect(remaining).toEqual([4, 3, 2]);

    // A scripted error gets them too, its own headers winning.
    fake.script(faults.rateLimited({ seconds: 7 }));
    const scripted = await chat();
    expect(scripted.status).toBe(429);
    expect(scripted.headers.get('retry-after')).toBe('7');
    expect(scripted.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    await scripted.text();
    expect(fake.rejected).toBe(0); // a scripted 429 is not a refusal for capacity

    // maxConcurrent alone reports a large default budget.
    fake.setCapacity({ maxConcurrent: 10 });
    const { res } = await chatDone();
    expect(Number(res.headers.get('x-ratelimit-limit-requests'))).toBeGreaterThanOrEqual(1000);
    expect(Number(res.headers.get('x-ratelimit-remaining-requests'))).toBe(
      Number(res.headers.get('x-ratelimit-limit-requests')) - 1,
    );
  });

  it('scripted rateLimitHeaders are reported, then enforced until their reset', async () => {
    fake.setCapacity({
      rateLimitHeaders: { remainingRequests: 0, resetRequestsMs: 2000, limitTokens: 90_000 },
    });
    const startedAt = performance.now();
    const first = await chatDone();
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(first.res.headers.get('x-ratelimit-reset-requests')).toBe('2s');
    expect(first.res.headers.get('x-ratelimit-limit-tokens')).toBe('90000');

    const second = await chat();
    expect(Number(second.headers.get('retry-after'))).toBeLessThanOrEqual(2);
    expect(parseDuration(second.headers.get('x-ratelimit-reset-requests'))).toBeLessThanOrEqual(2000);
    await expectRateLimited(second);

    const later = await untilAccepted();
    expect(later.at - startedAt).toBeGreaterThanOrEqual(2000);
    expect(Number(later.res.headers.get('x-ratelimit-remaining-requests'))).toBeGreaterThan(0);
    expect((await chatDone()).res.status).toBe(200); // the script is spent
  });

  it('start options apply from the start, and reset() restores them and clears the counters', async () => {
    const own = await startFakeUpstream({ apiKey: 'sk-right', maxConcurrent: 1 });
    try {
      const post = (key: string) =>
        fetch(`${own.url}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
        });
      const go = gate();
      own.script({ kind: 'held', until: go.until, answer: { kind: 'reply' } });
      const held = post('sk-right');
      await waitFor(() => own.inFlight === 1, 'the held stream');
      expect((await post('sk-right')).status).toBe(429);
      const wrongKey = await post('sk-wrong'); // a bad key is a 401, capacity or not
      expect(wrongKey.status).toBe(401);
      expect(wrongKey.headers.get('x-ratelimit-limit-requests')).toBeNull();
      expect(own.rejected).toBe(1);
      go.open();
      await (await held).text();

      own.setCapacity({});
      own.reset();
      expect([own.inFlight, own.peakInFlight, own.rejected]).toEqual([0, 0, 0]);
      own.script({ kind: 'held', until: gate().until, answer: { kind: 'reply' } });
      const stuck = new AbortController();
      const pending = fetch(`${own.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk-right' },
        body: JSON.stringify({ messages: [] }),
        signal: stuck.signal,
      }).catch(() => undefined);
      await waitFor(() => own.inFlight === 1, 'the held stream');
      expect((await post('sk-right')).status).toBe(429); // maxConcurrent: 1 is back
      stuck.abort();
      await pending;
    } finally {
      await own.close();
    }
  });

  it('formats durations as OpenAI does', () => {
    expect([0, 850, 1000, 1500, 2000, 90_000, 360_000, 3_600_000].map(openAiDuration)).toEqual([
      '0s',
      '850ms',
      '1s',
      '1.5s',
      '2s',
      '1m30s',
      '6m0s',
      '1h0m0s',
    ]);
  });
});

describe('the fake upstream’s timing', () => {
  /** The raw reads a client gets for one scripted reply, over a plain socket (no HTTP client batching them). */
  async function rawReads(): Promise<string[]> {
    const body = JSON.stringify({
      model: 'm',
      messages: [{ role: 'user', content: 'one two three four' }],
      stream: true,
    });
    const { port } = new URL(fake.url);
    const socket = connect(Number(port), '127.0.0.1');
    const reads: string[] = [];
    socket.on('data', (data: Buffer) => reads.push(data.toString('latin1')));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor(() => reads.some((read) => read.includes('data: [DONE]')), 'the reply’s end');
    socket.destroy();
    return reads;
  }

  it('a whole reply comes in one write: the read with its first event has its [DONE] too', async () => {
    fake.script({ kind: 'whole' });
    const reads = await rawReads();
    const first = reads.findIndex((read) => read.includes('data: '));
    expect(first).toBeGreaterThanOrEqual(0);
    expect(reads[first]).toMatch(/"content":"[^"]+"/);
    expect(reads[first]).toContain('data: [DONE]');
  });

  it('a paced reply’s tokens come in reads of their own', async () => {
    fake.script({ kind: 'paced', tokenDelayMs: 20 });
    const reads = (await rawReads()).filter((read) => read.includes('"content":"'));
    expect(reads.length).toBeGreaterThan(3);
  });
});
