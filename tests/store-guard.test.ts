import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createStoreGuard, StoreUnavailable } from '../lib/limits/store-guard';

/**
 * The guard's timing, on fake timers: deterministic, whatever the machine is doing. (The end-to-end behaviour under a
 * real busy event loop is in tests/burst.test.ts.)
 */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'performance', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const never = () => new Promise<never>(() => {});
const TIMEOUT = 300;

function guard() {
  return createStoreGuard({ timeoutMs: TIMEOUT, breakMs: 1_000, now: Date.now });
}

/** Settles `promise` with fake time: how many ms it took, and how it ended. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; outcome: 'answered' | 'unavailable' }> {
  const started = Date.now();
  let outcome: 'answered' | 'unavailable' | undefined;
  promise.then(
    () => {
      outcome = 'answered';
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(StoreUnavailable);
      outcome = 'unavailable';
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  for (let i = 0; i < 10_000 && outcome === undefined; i++) await vi.advanceTimersByTimeAsync(1);
  if (!outcome) throw new Error('still pending after 10 s');
  return { ms: Date.now() - started, outcome };
}

describe('store guard', () => {
  it('gives a store that has never answered a short grace (connecting, loading scripts), then calls it down', async () => {
    const g = guard();
    const first = await timed(g.run(never));
    expect(first.outcome).toBe('unavailable');
    expect(first.ms).toBeGreaterThanOrEqual(4 * TIMEOUT);
    expect(first.ms).toBeLessThan(5 * TIMEOUT);
  });

  it('calls a store that answered before and then fell silent down after one timeout, and skips it for a second', async () => {
    const g = guard();
    await g.run(async () => 'pong');
    const silent = await timed(g.run(never));
    expect(silent.outcome).toBe('unavailable');
    expect(silent.ms).toBeLessThan(TIMEOUT + 10);
    const skipped = await timed(g.run(async () => 'pong'));
    expect(skipped).toMatchObject({ outcome: 'unavailable', ms: 0 }); // the breaker is open: not even asked
    await vi.advanceTimersByTimeAsync(1_000);
    expect((await timed(g.run(async () => 'pong'))).outcome).toBe('answered');
  });

  it('keeps waiting while the store keeps answering other calls (alive, just slow to reach ours)', async () => {
    const g = guard();
    await g.run(async () => 'warm');
    let resolveSlow: (value: string) => void = () => {};
    const slow = g.run(() => new Promise<string>((resolve) => (resolveSlow = resolve)));
    const ticker = setInterval(() => g.answered('another answer'), 100);
    setTimeout(() => resolveSlow('finally'), 5 * TIMEOUT);
    const result = await timed(slow);
    clearInterval(ticker);
    expect(result).toMatchObject({ outcome: 'answered', ms: 5 * TIMEOUT });
  });

  it('reports a failing call at once', async () => {
    const g = guard();
    const failed = await timed(g.run(() => Promise.reject(new Error('ECONNREFUSED'))));
    expect(failed).toMatchObject({ outcome: 'unavailable', ms: 0 });
  });
});
