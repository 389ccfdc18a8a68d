import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../fake-upstream';
import { linkedAbort, platformSignal, UpstreamTimeout } from '../lib/upstream/abort';
import { fetchTransport, type Transport } from '../lib/upstream/openai-http';
import { undiciTransport } from '../server/undici-transport';

/**
 * `linkedAbort`'s signal is not the platform's `AbortSignal` (Node 20 builds those slowly: lib/upstream/abort.ts), so
 * it is held to the platform's behaviour here, and so is each way an upstream call takes it.
 */
describe('linkedAbort', () => {
  it('aborts once, with an AbortError when no reason is given, calling each listener and onabort once', () => {
    const link = linkedAbort(undefined);
    const heard: string[] = [];
    link.signal.addEventListener('abort', () => heard.push('once'), { once: true });
    link.signal.onabort = () => heard.push('replaced');
    link.signal.onabort = () => heard.push('onabort'); // keeps the place the first one took
    link.signal.addEventListener('abort', (event) => heard.push(`listener ${event.type}`));
    expect(link.signal.aborted).toBe(false);
    expect(() => link.signal.throwIfAborted()).not.toThrow();

    link.abort();
    link.abort(new Error('a second reason'));

    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBeInstanceOf(DOMException);
    expect((link.signal.reason as DOMException).name).toBe('AbortError');
    expect(heard).toEqual(['once', 'onabort', 'listener abort']); // in the order they were added, as the platform's
    expect(() => link.signal.throwIfAborted()).toThrow(link.signal.reason as DOMException);
  });

  it('forgets an onabort set back to null', () => {
    const link = linkedAbort(undefined);
    let heard = 0;
    link.signal.onabort = () => heard++;
    link.signal.onabort = null;
    link.abort();
    expect(heard).toBe(0);
  });

  it('follows its parent with the parent’s reason, until disposed', () => {
    const parent = new AbortController();
    const followed = linkedAbort(parent.signal);
    const disposed = linkedAbort(parent.signal);
    disposed.dispose();
    const reason = new Error('the client left');
    parent.abort(reason);
    expect(followed.signal.reason).toBe(reason);
    expect(disposed.signal.aborted).toBe(false);
    // A parent that is a linked signal itself, already aborted: the child starts aborted.
    expect(linkedAbort(followed.signal).signal.reason).toBe(reason);
  });

  it('times out with an UpstreamTimeout of its kind, unless the timer was cleared', async () => {
    const timed = linkedAbort(undefined, { ms: 5, kind: 'first_token' });
    const cleared = linkedAbort(undefined, { ms: 5, kind: 'first_token' });
    cleared.clearTimer();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(timed.signal.reason).toEqual(new UpstreamTimeout('first_token'));
    expect(cleared.signal.aborted).toBe(false);
  });
});

describe('platformSignal (what fetch is given)', () => {
  it('passes a platform signal through, and bridges a linked one to a platform signal that aborts with it', () => {
    const own = new AbortController().signal;
    expect(platformSignal(own)).toBe(own);

    const link = linkedAbort(undefined);
    const bridged = platformSignal(link.signal);
    expect(bridged).toBeInstanceOf(AbortSignal);
    expect(bridged.aborted).toBe(false);
    const reason = new Error('stop');
    link.abort(reason);
    expect(bridged.reason).toBe(reason);

    expect(platformSignal(link.signal).reason).toBe(reason); // already aborted: bridged already aborted
  });
});

describe('an upstream call given a linked signal', () => {
  let fake: FakeUpstream;
  beforeAll(async () => {
    fake = await startFakeUpstream();
  });
  afterAll(() => fake.close());

  const transports: [string, Transport][] = [
    ['undici (the Node server)', undiciTransport()],
    ['fetch (the edge)', fetchTransport],
  ];
  it.each(transports)(
    '%s: is cut when it aborts, and the upstream sees the call go away',
    async (_, send) => {
      fake.script({ kind: 'stall', afterTokens: 1 });
      const link = linkedAbort(undefined);
      const body = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      const response = await send(`${fake.url}/chat/completions`, {
        headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
        body,
        signal: link.signal,
      });
      expect(response.status).toBe(200);
      const call = fake.calls.at(-1);
      link.abort(new UpstreamTimeout('idle'));
      await call?.settled;
      expect(call?.aborted).toBe(true);
    },
  );
});
