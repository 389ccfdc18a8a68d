import { UI_MESSAGE_STREAM_HEADERS } from 'ai';
import { describe, expect, it } from 'vitest';
import { demoReply } from '../fake-upstream/behaviours';
import { LiveReply } from '../lib/replies/live-reply';
import { pump } from '../lib/replies/pump';
import { replayReply } from '../lib/replies/replay';
import { ReplyBody } from '../lib/stream/reply-stream';
import { textFraming } from '../lib/stream/text-framing';
import { UI_STREAM_HEADERS } from '../lib/stream/ui-framing';
import type { Delta } from '../lib/types';
import { linkedAbort } from '../lib/upstream/abort';
import { chatRequest, eventually, startHarness, userSays } from './support/harness';
import { chatLikeUseChat, userMessage } from './support/ui';

const h = await startHarness();
const REPLY = 'Hello there, this is exactly the reply — with ünïcödé and emoji 🎉 intact.';

describe('UI message stream (useChat)', () => {
  it('sends exactly the ai SDK’s UI stream headers', () => {
    expect(UI_STREAM_HEADERS).toEqual(UI_MESSAGE_STREAM_HEADERS);
  });

  it('streams a reply that the ai SDK reassembles exactly', async () => {
    h.fake.script({ kind: 'reply', text: REPLY });
    const result = await chatLikeUseChat(h.handler, [userMessage('Hi')]);
    expect(result.errors).toEqual([]);
    expect(result.text).toBe(REPLY);
    expect(h.fake.calls).toHaveLength(1);
  });

  it('answers with the UI stream headers, a request id and the model', async () => {
    const res = await h.handler(chatRequest(userSays('Hi')));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-chat-model')).toBe('test-model');
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const body = await res.text();
    expect(body).toContain('data: {"type":"text-delta"');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('sends the whole conversation, after the server system prompt, with streaming and usage on', async () => {
    await chatLikeUseChat(h.handler, [
      userMessage('First question', 'a'),
      { id: 'b', role: 'assistant', parts: [{ type: 'step-start' }, { type: 'text', text: 'First answer' }] },
      userMessage('Second question', 'c'),
    ]);
    const sent = h.fake.calls[0]?.body;
    expect(sent?.messages).toEqual([
      { role: 'system', content: 'You are a test assistant.' },
      { role: 'user', content: 'First question' },
      { role: 'assistant', content: 'First answer' },
      { role: 'user', content: 'Second question' },
    ]);
    expect(sent?.stream).toBe(true);
    expect(sent?.stream_options).toEqual({ include_usage: true });
    expect(sent?.model).toBe('test-model');
    expect(sent?.max_tokens).toBe(h.config.caps.maxOutputTokens);
  });

  it('passes an allowed model, maxTokens and temperature through', async () => {
    const res = await h.handler(
      chatRequest({ ...userSays('Hi'), model: 'test-model-large', maxTokens: 12, temperature: 0.3 }),
    );
    await res.text();
    expect(res.headers.get('x-chat-model')).toBe('test-model-large');
    expect(h.fake.calls[0]?.body).toMatchObject({
      model: 'test-model-large',
      max_tokens: 12,
      temperature: 0.3,
    });
  });
});

describe('plain text (curl)', () => {
  it('answers `Accept: text/plain` with the exact text, token by token', async () => {
    h.fake.script({ kind: 'reply', text: REPLY });
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe(REPLY);
  });

  it('defaults to the UI stream for curl without an Accept header', async () => {
    const res = await h.handler(chatRequest(userSays('Hi')));
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    await res.text();
  });

  it('replies with the demo echo of the user words', async () => {
    const res = await h.handler(chatRequest(userSays('ping pong'), { headers: { accept: 'text/plain' } }));
    expect(await res.text()).toBe(demoReply('ping pong'));
  });
});

describe('flushing and disconnects', () => {
  it('flushes each token as soon as it arrives, while the upstream is still mid-reply', async () => {
    // The upstream sends two tokens and then holds the connection: buffering would mean we never see them.
    h.fake.script({ kind: 'stall', afterTokens: 2, text: 'one two three four' });
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    const reader = res.body?.getReader();
    if (!reader) throw new Error('no body');
    const decoder = new TextDecoder();
    let seen = '';
    // Read until two tokens' worth arrived (or the stream ended); the upstream holds back the rest meanwhile.
    while (seen.length < 'one two '.length) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    expect(seen).toBe('one two ');
    expect(h.fake.calls[0]?.aborted).toBe(false);
    await reader.cancel();
    // Its line is written once the upstream has stopped: wait for it, or it lands in the next test's logs.
    await eventually(() => h.logs.length === 1);
  });

  it('aborts the upstream when the client stops reading', async () => {
    h.fake.script({ kind: 'stall', afterTokens: 1 });
    const res = await h.handler(chatRequest(userSays('Hi')));
    const reader = res.body?.getReader();
    await reader?.read();
    await reader?.cancel();
    const call = h.fake.calls[0];
    // Well inside the 20 s idle timeout: the abort came from the cancel, not from a timer.
    await eventually(() => call?.aborted === true, 5_000);
    await eventually(() => h.logs.length === 1);
    expect(h.logs[0]).toMatchObject({ outcome: 'cancelled', status: 200 });
  });

  it('aborts the upstream when the request signal fires mid-stream (client disconnect)', async () => {
    const client = new AbortController();
    h.fake.script({ kind: 'stall', afterTokens: 1 });
    const res = await h.handler(chatRequest(userSays('Hi'), { signal: client.signal }));
    expect(res.status).toBe(200);
    client.abort();
    const call = h.fake.calls[0];
    // Well inside the 20 s idle timeout: the abort came from the client, not from a timer.
    await eventually(() => call?.aborted === true, 5_000);
    await res.text().catch(() => {});
    await eventually(() => h.logs.length === 1);
    expect(h.logs[0]).toMatchObject({ outcome: 'cancelled' });
  });

  it('aborts the upstream when the client leaves before the first token', async () => {
    const client = new AbortController();
    h.fake.script({ kind: 'slow-first-token', delayMs: 5_000 });
    const pending = h.handler(chatRequest(userSays('Hi'), { signal: client.signal }));
    await eventually(() => h.fake.calls.length === 1);
    client.abort();
    const res = await pending;
    expect(res.status).toBe(499);
    await eventually(() => h.fake.calls[0]?.aborted === true);
    expect(h.logs[0]).toMatchObject({ status: 499, error_code: 'client_closed_request' });
  });
});

describe('request id and the log line', () => {
  it('keeps a sane incoming x-request-id and replaces an insane one', async () => {
    const kept = await h.handler(
      chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'trace-abc_123.4:5' } }),
    );
    expect(kept.headers.get('x-request-id')).toBe('trace-abc_123.4:5');
    await kept.text();
    const replaced = await h.handler(
      chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'bad id <script>' } }),
    );
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await replaced.text();
    const tooLong = await h.handler(
      chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'a'.repeat(129) } }),
    );
    expect(tooLong.headers.get('x-request-id')).not.toBe('a'.repeat(129));
    await tooLong.text();
  });

  it('writes one structured line per request with id, status, model, ttft, duration and usage', async () => {
    h.fake.script({ kind: 'reply', text: 'one two three' });
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'log-test-1' } }));
    await res.text();
    await eventually(() => h.logs.length === 1);
    const [line] = h.logs;
    expect(line).toMatchObject({
      level: 'info',
      msg: 'chat',
      request_id: 'log-test-1',
      status: 200,
      outcome: 'complete',
      model: 'test-model',
      protocol: 'ui',
      usage: { completion_tokens: 3 },
    });
    expect(line?.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(line?.duration_ms).toBeGreaterThanOrEqual(line?.ttft_ms ?? 0);
    expect(line?.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(line?.usage?.total_tokens).toBe((line?.usage?.prompt_tokens ?? 0) + 3);
  });
});

describe('chunks (lib/stream/reply-stream.ts)', () => {
  /** A reply whose tokens the test hands over one by one; `ready` says whether the next one is already here. */
  function handedReply() {
    const queue: string[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    async function* tokens(): AsyncGenerator<string> {
      for (;;) {
        const token = queue.shift();
        if (token !== undefined) yield token;
        else if (done) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    const give = (...more: string[]) => {
      queue.push(...more);
      wake?.();
    };
    const finish = () => {
      done = true;
      wake?.();
    };
    const reply = { tokens: tokens(), outcome: { deltas: 0 }, ready: () => queue.length > 0 };
    return { reply, give: Object.assign(give, { take: () => queue.shift() }), finish };
  }
  /** The tokens, and how many steps of their iterator were taken. */
  function counted(from: AsyncIterable<Delta>) {
    const iterator = from[Symbol.asyncIterator]();
    let steps = 0;
    const tokens = {
      [Symbol.asyncIterator]: () => tokens,
      next: () => {
        steps++;
        return iterator.next();
      },
    };
    return { tokens, steps: () => steps };
  }
  const framing = textFraming(false);
  const hooks = { abort: () => {}, onEnd: () => {} };
  const decoder = new TextDecoder();

  it('sends the tokens already there as one chunk, and never holds one back for a token still to come', async () => {
    const { reply, give, finish } = handedReply();
    const reader = new ReplyBody(reply, framing, hooks).readable().getReader();
    give('a', 'b', 'c');
    expect(decoder.decode((await reader.read()).value)).toBe('abc');
    give('d'); // alone: it goes at once, though nothing follows it yet
    expect(decoder.decode((await reader.read()).value)).toBe('d');
    give('e', 'f');
    finish();
    expect(decoder.decode((await reader.read()).value)).toBe('ef');
    expect((await reader.read()).done).toBe(true);
  });

  it('takes the tokens already there without a step of the iterator each (Reply.take), in order', async () => {
    const { reply, give, finish } = handedReply();
    const { tokens, steps } = counted(reply.tokens);
    const taking = { ...reply, tokens, take: () => (reply.ready() ? give.take() : undefined) };
    const reader = new ReplyBody(taking, framing, hooks).readable().getReader();
    give('a', 'b', 'c');
    expect(decoder.decode((await reader.read()).value)).toBe('abc');
    expect(steps()).toBe(1);
    give('d', 'e');
    finish();
    expect(decoder.decode((await reader.read()).value)).toBe('de');
    expect((await reader.read()).done).toBe(true);
    expect(steps()).toBe(3); // 'd', then the end
  });

  it('a replayed reply: its recorded tokens and its end as one chunk, each token taken without a step', async () => {
    const live = new LiveReply();
    const served = { model: 'm', provider: 'main', attempts: 1, fallback: 'none' } as const;
    live.push({ type: 'head', head: { served, messageId: 'x' } });
    for (const delta of ['a', 'b', 'c']) live.push({ type: 'delta', delta, at: 0 });
    live.push({ type: 'end', finishReason: 'stop' });
    const { reply } = await replayReply(live.reader());
    const { tokens, steps } = counted(reply.tokens);
    const ending = { ...framing, end: () => '<end>' };
    const reader = new ReplyBody({ ...reply, tokens }, ending, hooks).readable().getReader();
    expect(decoder.decode((await reader.read()).value)).toBe('abc<end>');
    expect(steps()).toBe(2); // 'a', then the end: 'b' and 'c' were taken
    expect(reply.outcome).toMatchObject({ deltas: 3, finishReason: 'stop' });
  });

  it('sends one token per chunk for a reply that cannot tell what is there (straight from the upstream)', async () => {
    const { reply, give, finish } = handedReply();
    const { ready: _unknown, ...upstream } = reply;
    const reader = new ReplyBody(upstream, framing, hooks).readable().getReader();
    give('a', 'b');
    finish();
    expect(decoder.decode((await reader.read()).value)).toBe('a');
    expect(decoder.decode((await reader.read()).value)).toBe('b');
  });
});

describe("the leader's pump (lib/replies/pump.ts)", () => {
  it('records every token in order, stepping the tokens once per read: the rest of a read is taken', async () => {
    const reads = [['a', 'b', 'c'], ['d']];
    let batch: string[] = [];
    let steps = 0;
    const tokens = {
      [Symbol.asyncIterator]: () => tokens,
      next: async (): Promise<IteratorResult<string>> => {
        steps++;
        batch = [...(reads.shift() ?? [])];
        const value = batch.shift();
        return value === undefined ? { done: true, value: undefined } : { done: false, value };
      },
    };
    const served = { model: 'm', provider: 'main', attempts: 1, fallback: 'none' } as const;
    const reply = { tokens, outcome: { deltas: 4, finishReason: 'stop' }, served, take: () => batch.shift() };
    const live = new LiveReply();
    const abort = { ...linkedAbort(undefined), streaming: () => {} };
    await pump(live, async () => reply, abort, 'x');
    const events = Array.from({ length: live.events.length }, (_, i) => live.events.at(i));
    expect(events.map((e) => (e?.type === 'delta' ? e.delta : e?.type))).toEqual([
      'head',
      'a',
      'b',
      'c',
      'd',
      'end',
    ]);
    expect(steps).toBe(3); // 'a', 'd', then the end
  });
});
