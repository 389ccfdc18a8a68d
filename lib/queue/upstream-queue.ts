import type { QueueConfig } from '../config/queue';
import { ProxyError } from '../errors';
import type { Internal } from '../internal';
import { abortableSleep } from '../upstream/abort';
import { abortError, UpstreamFailure } from '../upstream/errors';
import type { CapacityStore } from './capacity-store';
import { pauseFrom } from './rate-limit-headers';

/** A slot of a provider's capacity, held while one upstream stream runs. */
export interface Slot {
  /** Gives it back (idempotent): the next waiter may go. */
  release(): void;
  /** False for a provider with no limit of ours and no pause: nothing to hold, nothing to give back. */
  readonly held: boolean;
}

export interface UpstreamQueue {
  /**
   * Resolves with a slot of `provider`'s capacity: at once when it has room (or no limits), else after waiting in
   * line, fairly across callers. Rejects with 503 `queue_full` or `queue_timeout`, or when `signal` aborts (the
   * client left: it leaves the line at once).
   */
  acquire(provider: string, model: string, callerId: string, signal: AbortSignal): Promise<Slot>;
  /**
   * What an answer of `provider` said (status and headers): remaining requests or tokens at 0, or a 429's
   * `retry-after`, pause it until its reset, so the next requests wait instead of meeting its 429.
   */
  learn(provider: string, model: string, status: number | undefined, headers: Headers | undefined): void;
}

export interface QueueOptions {
  readonly config: QueueConfig;
  readonly store: CapacityStore;
  /** A slot is a lease renewed while its stream runs: a crashed instance frees its slots within it. */
  readonly leaseMs: number;
  /** Without a wake from the store (Upstash REST), how often the head of the line asks again. */
  readonly pollMs: number;
  readonly internal: Internal;
}

interface Waiter {
  readonly callerId: string;
  readonly grant: (slot: Slot) => void;
  readonly fail: (error: unknown) => void;
}

/** One provider's line on this instance: each caller's waiters, and whose turn it is (round-robin). */
interface Line {
  readonly byCaller: Map<string, Waiter[]>;
  /** Callers with someone waiting, in turn order: the first goes next, then moves to the back. */
  readonly turns: string[];
  running: boolean;
  /** Ends the head's wait; a wake while it is not waiting is kept, so the next wait ends at once. */
  wake: () => void;
  woken: boolean;
}

const NO_LIMIT: Slot = { release: () => {}, held: false };
/** With pub/sub wakes, the head of the line still asks this often (a wake lost, a lease that lapsed). */
const WATCHED_POLL_MS = 1_000;

/**
 * Waiting for upstream capacity instead of failing. The line is per instance and fair: capacity goes round-robin
 * across callers, so a burst from one caller waits behind everyone else's next request, not in front of it. Across
 * instances the store decides who gets each slot; a freed slot wakes the lines on every instance (pub/sub over TCP)
 * or is found by polling.
 */
export function createUpstreamQueue(options: QueueOptions): UpstreamQueue {
  const { config, store, internal } = options;
  const lines = new Map<string, Line>();
  // What this instance learnt from its providers' headers, by provider and model (OpenAI's limits are per model).
  const pausedUntil = new Map<string, number>();
  const pauseLeft = (at: string) => (pausedUntil.get(at) ?? 0) - internal.now();
  let waiting = 0;

  const slotFor = (provider: string, leaseId: string) =>
    leasedSlot(store, provider, leaseId, options.leaseMs, () => lines.get(provider)?.wake());

  /** One try at the store. If the store cannot answer, the request goes ahead: the provider's own 429 is the backstop. */
  const tryTake = async (provider: string) => {
    const limits = config.capacity[provider];
    if (!limits) return { slot: NO_LIMIT, retryInMs: 0 };
    const leaseId = internal.newId();
    const answer = await store
      .tryAcquire(provider, leaseId, limits, options.leaseMs)
      .catch(() => ({ granted: true }) as const);
    return answer.granted
      ? { slot: slotFor(provider, leaseId), retryInMs: 0 }
      : { slot: undefined, retryInMs: answer.retryInMs };
  };

  const serve = (provider: string, line: Line) => {
    if (line.running) return;
    line.running = true;
    void runLine(provider, line, tryTake, waitMs(options, store), () => {
      line.running = false;
    });
  };

  return {
    async acquire(provider, model, callerId, signal) {
      await holdOff(pauseLeft(`${provider} ${model}`), config.maxWaitMs, signal);
      // The hot path for a provider with no limits of ours: no store, no line.
      if (!config.capacity[provider]) return NO_LIMIT;
      if (signal.aborted) throw abortError(signal);
      const line = lineOf(lines, provider, store);
      if (line.turns.length === 0) {
        const first = await tryTake(provider);
        if (first.slot) return first.slot;
      }
      if (waiting >= config.maxLength) throw queueFull();
      waiting++;
      try {
        return await enqueue(line, callerId, signal, config.maxWaitMs, () => serve(provider, line));
      } finally {
        waiting--;
      }
    },
    learn(provider, model, status, headers) {
      const ms = pauseFrom(status, headers);
      if (ms === undefined) return;
      const at = `${provider} ${model}`;
      pausedUntil.set(at, Math.max(pausedUntil.get(at) ?? 0, internal.now() + ms));
    },
  };
}

/** A granted slot: its lease renewed while the stream runs, given back (and the line woken) at its end. */
function leasedSlot(
  store: CapacityStore,
  provider: string,
  leaseId: string,
  leaseMs: number,
  freed: () => void,
): Slot {
  const renewal = setInterval(
    () => void store.renew(provider, leaseId, leaseMs).catch(() => {}),
    Math.max(50, Math.floor(leaseMs / 3)),
  );
  let released = false;
  return {
    held: true,
    release() {
      if (released) return;
      released = true;
      clearInterval(renewal);
      // The line asks again once the store has the slot back, not before (it would just be refused).
      void store
        .release(provider, leaseId)
        .catch(() => {})
        .then(freed);
    },
  };
}

/**
 * The provider said to hold off (its headers, learnt by this instance): wait it out before taking a place in line,
 * or, if that is longer than a request may wait, fail now the way its 429 would have, so the failover can try
 * another model or provider instead.
 */
async function holdOff(pausedMs: number, maxWaitMs: number, signal: AbortSignal): Promise<void> {
  if (pausedMs <= 0) return;
  if (pausedMs > maxWaitMs) throw providerPaused(pausedMs);
  await abortableSleep(pausedMs, signal).catch(() => {
    throw abortError(signal);
  });
}

function providerPaused(pausedMs: number): UpstreamFailure {
  const message = 'The assistant is busy right now. Please try again shortly.';
  const headers = { 'retry-after': String(Math.max(1, Math.ceil(pausedMs / 1000))) };
  const advice = { retry: false, fallback: 'any' as const };
  const detail = `the provider's rate-limit headers said to hold off ${pausedMs} ms`;
  return new UpstreamFailure(503, 'upstream_rate_limited', message, advice, { headers, detail });
}

function lineOf(lines: Map<string, Line>, provider: string, store: CapacityStore): Line {
  let line = lines.get(provider);
  if (!line) {
    const fresh: Line = {
      byCaller: new Map(),
      turns: [],
      running: false,
      woken: false,
      wake: () => {
        fresh.woken = true;
      },
    };
    line = fresh;
    lines.set(provider, line);
    const known = line;
    store.watch?.(provider, () => known.wake());
  }
  return line;
}

/** Puts a request in line, and takes it out again on its timeout or when its client leaves. */
function enqueue(line: Line, callerId: string, signal: AbortSignal, maxWaitMs: number, start: () => void) {
  return new Promise<Slot>((resolve, reject) => {
    const leave = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      removeWaiter(line, callerId, waiter);
    };
    const waiter: Waiter = {
      callerId,
      grant: (slot) => {
        leave();
        resolve(slot);
      },
      fail: (error) => {
        leave();
        reject(error);
      },
    };
    const onAbort = () => waiter.fail(abortError(signal));
    const timer = setTimeout(() => waiter.fail(queueTimeout(maxWaitMs)), maxWaitMs);
    signal.addEventListener('abort', onAbort, { once: true });
    const mine = line.byCaller.get(callerId);
    if (mine) mine.push(waiter);
    else {
      line.byCaller.set(callerId, [waiter]);
      line.turns.push(callerId);
    }
    start();
  });
}

function removeWaiter(line: Line, callerId: string, waiter: Waiter): void {
  const mine = line.byCaller.get(callerId);
  if (!mine) return;
  const at = mine.indexOf(waiter);
  if (at >= 0) mine.splice(at, 1);
  if (mine.length > 0) return;
  line.byCaller.delete(callerId);
  const turn = line.turns.indexOf(callerId);
  if (turn >= 0) line.turns.splice(turn, 1);
}

type TryTake = (provider: string) => Promise<{ slot: Slot | undefined; retryInMs: number }>;

/**
 * Serves one line until it is empty: the caller whose turn it is gets the next slot, then goes to the back of the
 * turns. A slot granted to a waiter that left meanwhile goes back at once.
 */
async function runLine(
  provider: string,
  line: Line,
  tryTake: TryTake,
  wait: (line: Line, retryInMs: number) => Promise<void>,
  done: () => void,
): Promise<void> {
  while (line.turns.length > 0) {
    const callerId = line.turns[0] as string;
    const { slot, retryInMs } = await tryTake(provider);
    if (!slot) {
      await wait(line, retryInMs);
      continue;
    }
    const waiter = line.byCaller.get(callerId)?.[0];
    if (!waiter) {
      slot.release();
      continue;
    }
    // Its turn is used: to the back of the line, if it has more waiting (grant removes it when it has none left).
    // (Others may have left the line while the store answered: find it rather than assume it is still first.)
    const turn = line.turns.indexOf(callerId);
    if (turn >= 0) line.turns.splice(turn, 1);
    line.turns.push(callerId);
    waiter.grant(slot);
  }
  done();
}

function waitMs(options: QueueOptions, store: CapacityStore) {
  const pollMs = store.watch ? WATCHED_POLL_MS : options.pollMs;
  return (line: Line, retryInMs: number) =>
    new Promise<void>((resolve) => {
      if (line.woken) {
        line.woken = false;
        return resolve();
      }
      const sleep = line.wake;
      const timer = setTimeout(done, Math.max(1, Math.min(retryInMs, pollMs)));
      function done() {
        clearTimeout(timer);
        line.wake = sleep;
        resolve();
      }
      line.wake = done;
    });
}

const RETRY_AFTER_SECONDS = '5';

function queueFull(): ProxyError {
  return new ProxyError(
    503,
    'queue_full',
    'The assistant is very busy right now. Please try again in a moment.',
    {
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
      detail: 'QUEUE_MAX_LENGTH requests already waiting on this instance',
    },
  );
}

function queueTimeout(maxWaitMs: number): ProxyError {
  return new ProxyError(
    503,
    'queue_timeout',
    'The assistant is very busy right now. Please try again in a moment.',
    {
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
      detail: `no upstream capacity within QUEUE_MAX_WAIT_MS (${maxWaitMs} ms)`,
    },
  );
}
