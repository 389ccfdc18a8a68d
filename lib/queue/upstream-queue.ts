import type { ProviderCapacity, QueueConfig } from '../config/queue';
import type { Internal } from '../internal';
import type { HeaderLookup, QueueTicket } from '../types';
import { abortableSleep } from '../upstream/abort';
import { abortError } from '../upstream/errors';
import type { CapacityStore } from './capacity-store';
import { createLine, type Line, type Waiter } from './line';
import { createPauses } from './pauses';
import { providerPaused, providerSaturated, queueFull, queueTimeout } from './queue-errors';
import { pauseFrom } from './rate-limit-headers';

/** A slot of a provider's capacity, held while one upstream stream runs. */
export interface Slot {
  /**
   * Gives it back (idempotent): the next waiter may go. `usedTokens`: what the stream really used, settled against
   * the worst case it booked from `UPSTREAM_TPM` (absent: the booking stands).
   */
  release(usedTokens?: number): void;
  /** False for a provider with no limit of ours and no pause: nothing to hold, nothing to give back. */
  readonly held: boolean;
}

export interface UpstreamQueue {
  /**
   * Resolves with a slot of `provider`'s capacity: at once when it has room (or no limits), else after waiting in
   * line, by priority and then fairly across callers. Rejects with 503 `queue_full` or `queue_timeout`, or when
   * `signal` aborts (the client left: it leaves the line at once). `mayFallBack`: a later route could answer
   * instead, so with `QUEUE_PREFER=fallback` a saturated provider fails at once rather than waits.
   */
  acquire(
    provider: string,
    model: string,
    ticket: QueueTicket,
    signal: AbortSignal,
    mayFallBack?: boolean,
  ): Promise<Slot>;
  /**
   * What an answer of `provider` said (status and headers): remaining requests or tokens at 0, or a 429's
   * `retry-after`, pause it until its reset, so the next requests wait instead of meeting its 429.
   */
  learn(provider: string, model: string, status: number | undefined, headers: HeaderLookup | undefined): void;
  /** Requests waiting for capacity on this instance now. */
  waiting(): number;
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

interface Entry extends Waiter {
  readonly grant: (slot: Slot) => void;
  readonly fail: (error: unknown) => void;
  told?: number;
}

/** One provider's line on this instance, and what it knows of how long a slot is held. */
interface Provider {
  readonly name: string;
  readonly limits: ProviderCapacity;
  readonly line: Line;
  running: boolean;
  /** Ends the head's wait; a wake while it is not waiting is kept, so the next wait ends at once. */
  wake: () => void;
  woken: boolean;
  /** How long this instance's streams held a slot of this provider, smoothed: the queue's ETA. */
  holdMs: number | undefined;
}

type Taken = { slot: Slot; retryInMs: 0 } | { slot: undefined; retryInMs: number };

const NO_LIMIT: Slot = { release: () => {}, held: false };
/** With pub/sub wakes, the head of the line still asks this often (a wake lost, a lease that lapsed). */
const WATCHED_POLL_MS = 1_000;

/**
 * Waiting for upstream capacity instead of failing. The line is per instance (lib/queue/line.ts: by priority, then
 * round-robin across callers). Across instances the store decides who gets each slot; a freed slot wakes the lines
 * on every instance (pub/sub over TCP) or is found by polling. Each waiter hears its place as it changes.
 */
export function createUpstreamQueue(options: QueueOptions): UpstreamQueue {
  const { config, store, internal } = options;
  const providerOf = providerRegistry(store);
  const pauses = createPauses(store, internal.now);
  const budgets = waitBudgets(config, internal);
  const take = takeFrom(options, (p) => p.wake());
  const serve = (p: Provider) => {
    if (p.running) return;
    p.running = true;
    void runLine(p, take, pollWait(options, store)).finally(() => {
      p.running = false;
      // A waiter may have joined between the loop's end and here, finding it still running: serve it.
      if (p.line.size > 0) serve(p);
    });
  };

  return {
    async acquire(provider, model, ticket, signal, mayFallBack = false) {
      const paused = await pauses.left(provider, model);
      const limits = config.capacity[provider];
      // The hot path for a provider with no limits of ours and no pause: no store, no line, no clock.
      if (!limits && paused <= 0) return NO_LIMIT;
      const budget = budgets.of(ticket);
      const slept = paused > 0 && (await budget.inLine(() => sleepOff(paused, budget.left(), signal)));
      if (!limits) return budget.done(NO_LIMIT);
      if (signal.aborted) throw abortError(signal);
      const p = providerOf(provider, limits);
      if (p.line.size === 0) {
        const first = await take(p, ticket.tokens);
        if (first.slot) return slept ? budget.done(first.slot) : first.slot;
      }
      if (mayFallBack && config.prefer === 'fallback') throw providerSaturated(provider);
      return budget.done(
        await budget.inLine(() => enqueue(p, ticket, signal, budget.left(), () => serve(p))),
      );
    },
    learn(provider, model, status, headers) {
      const ms = pauseFrom(status, headers);
      if (ms !== undefined) pauses.learn(provider, model, ms);
    },
    waiting: () => budgets.waiting(),
  };
}

/** Each provider's line on this instance, made at its first wait (and woken by the store when a slot frees). */
function providerRegistry(store: CapacityStore) {
  const providers = new Map<string, Provider>();
  return (name: string, limits: ProviderCapacity): Provider => {
    const known = providers.get(name);
    if (known) return known;
    const fresh: Provider = {
      name,
      limits,
      line: createLine(),
      running: false,
      woken: false,
      holdMs: undefined,
      wake: () => {
        fresh.woken = true;
      },
    };
    providers.set(name, fresh);
    store.watch?.(name, () => fresh.wake());
    return fresh;
  };
}

/**
 * Each request waits at most `QUEUE_MAX_WAIT_MS` in all, pauses and the line together, over every attempt of its
 * failover (its ticket is the same for each), and at most `QUEUE_MAX_LENGTH` requests wait on this instance.
 */
function waitBudgets(config: QueueConfig, internal: Internal) {
  const deadlines = new WeakMap<QueueTicket, number>();
  let waiting = 0;
  const of = (ticket: QueueTicket) => {
    const started = internal.now();
    const deadline = deadlines.get(ticket) ?? started + config.maxWaitMs;
    deadlines.set(ticket, deadline);
    return {
      left: () => deadline - internal.now(),
      /** Counts the request among those waiting while `wait` runs. */
      async inLine<T>(wait: () => Promise<T>): Promise<T> {
        if (waiting >= config.maxLength) throw queueFull();
        waiting++;
        try {
          return await wait();
        } finally {
          waiting--;
        }
      },
      /** It waited: its log line says how long. */
      done(slot: Slot): Slot {
        ticket.onWaited?.(internal.now() - started);
        return slot;
      },
    };
  };
  return { of, waiting: () => waiting };
}

/** One try at the store. If the store cannot answer, the request goes ahead: the provider's own 429 is the backstop. */
function takeFrom(options: QueueOptions, freed: (p: Provider) => void) {
  const { store, leaseMs, internal } = options;
  return async (p: Provider, tokens: number): Promise<Taken> => {
    const leaseId = internal.newId();
    const booked = p.limits.tpm === undefined ? 0 : Math.min(tokens, p.limits.tpm);
    const answer = await store
      .tryAcquire(p.name, leaseId, p.limits, leaseMs, booked)
      .catch(() => ({ granted: true, window: undefined }) as const);
    if (!answer.granted) return { slot: undefined, retryInMs: answer.retryInMs };
    const grantedAt = internal.now();
    const onRelease = () => {
      const held = internal.now() - grantedAt;
      p.holdMs = p.holdMs === undefined ? held : Math.round(p.holdMs * 0.8 + held * 0.2);
      freed(p);
    };
    const booking = answer.window === undefined ? undefined : { window: answer.window, tokens: booked };
    return { slot: leasedSlot(store, p.name, leaseId, leaseMs, booking, onRelease), retryInMs: 0 };
  };
}

/** A granted slot: its lease renewed while the stream runs, given back (and the line woken) at its end. */
function leasedSlot(
  store: CapacityStore,
  provider: string,
  leaseId: string,
  leaseMs: number,
  booking: { window: number; tokens: number } | undefined,
  freed: () => void,
): Slot {
  const renewal = setInterval(
    () => void store.renew(provider, leaseId, leaseMs).catch(() => {}),
    Math.max(50, Math.floor(leaseMs / 3)),
  );
  let released = false;
  return {
    held: true,
    release(usedTokens) {
      if (released) return;
      released = true;
      clearInterval(renewal);
      const settlement =
        booking && usedTokens !== undefined
          ? { window: booking.window, delta: Math.round(usedTokens) - booking.tokens }
          : undefined;
      // The line asks again once the store has the slot back, not before (it would just be refused).
      void store
        .release(provider, leaseId, settlement)
        .catch(() => {})
        .then(freed);
    },
  };
}

/**
 * The provider said to hold off (its headers, learnt by any instance): wait it out before taking a place in line,
 * or, if that is longer than a request may wait, fail now so the failover can try another route.
 */
async function sleepOff(pausedMs: number, leftMs: number, signal: AbortSignal): Promise<true> {
  if (pausedMs > leftMs) throw providerPaused(pausedMs);
  await abortableSleep(pausedMs, signal).catch(() => {
    throw abortError(signal);
  });
  return true;
}

/** Puts a request in line, and takes it out again on its timeout or when its client leaves. */
function enqueue(
  p: Provider,
  ticket: QueueTicket,
  signal: AbortSignal,
  maxWaitMs: number,
  start: () => void,
) {
  return new Promise<Slot>((resolve, reject) => {
    // Gone before it got here, or its wait is spent (pauses, earlier attempts): never in line at all.
    if (signal.aborted) return reject(abortError(signal));
    if (maxWaitMs <= 0) return reject(queueTimeout(maxWaitMs));
    const leave = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (p.line.remove(entry)) tellPlaces(p);
      entry.onPlace?.(undefined);
    };
    const entry: Entry = {
      callerId: ticket.callerId,
      priority: ticket.priority,
      tokens: ticket.tokens,
      onPlace: ticket.onPlace,
      grant: (slot) => {
        leave();
        resolve(slot);
      },
      fail: (error) => {
        leave();
        reject(error);
      },
    };
    const onAbort = () => entry.fail(abortError(signal));
    const timer = setTimeout(() => entry.fail(queueTimeout(maxWaitMs)), maxWaitMs);
    signal.addEventListener('abort', onAbort, { once: true });
    p.line.add(entry);
    tellPlaces(p);
    start();
  });
}

/** Tells each waiter that listens its place, when it changed: a grant or a departure moves everyone behind it. */
function tellPlaces(p: Provider): void {
  for (const [waiter, position] of p.line.positions()) {
    const entry = waiter as Entry;
    if (!entry.onPlace || entry.told === position) continue;
    entry.told = position;
    entry.onPlace({ position, etaMs: etaOf(p, position) });
  }
}

/**
 * When the waiter at `position` should go: by the open-stream limit, a slot frees every `holdMs / maxConcurrent`;
 * by the request limit, one starts every `60 s / rpm`. Null until this instance has seen a slot held.
 */
function etaOf(p: Provider, position: number): number | null {
  const { maxConcurrent, rpm } = p.limits;
  const estimates: number[] = [];
  if (maxConcurrent !== undefined && p.holdMs !== undefined) {
    estimates.push((position * p.holdMs) / maxConcurrent);
  }
  if (rpm !== undefined) estimates.push((position * 60_000) / rpm);
  if (estimates.length === 0) return null;
  return Math.round(Math.max(...estimates) / 100) * 100;
}

/**
 * Serves one line until it is empty: whoever's turn it is when a slot comes gets it (others may have left the line
 * while the store answered). A slot that finds nobody waiting goes back at once.
 */
async function runLine(
  p: Provider,
  take: (p: Provider, tokens: number) => Promise<Taken>,
  wait: (p: Provider, retryInMs: number) => Promise<void>,
): Promise<void> {
  for (let head = p.line.next(); head; head = p.line.next()) {
    const { slot, retryInMs } = await take(p, head.tokens);
    if (!slot) {
      await wait(p, retryInMs);
      continue;
    }
    const waiter = p.line.next() as Entry | undefined;
    // Nobody left, or someone else's turn now who would need more tokens than were booked: give it back, ask again.
    if (!waiter || (waiter !== head && waiter.tokens > head.tokens)) {
      slot.release(0);
      continue;
    }
    p.line.served(waiter);
    waiter.grant(slot);
    tellPlaces(p);
  }
}

function pollWait(options: QueueOptions, store: CapacityStore) {
  const pollMs = store.watch ? WATCHED_POLL_MS : options.pollMs;
  return (p: Provider, retryInMs: number) =>
    new Promise<void>((resolve) => {
      if (p.woken) {
        p.woken = false;
        return resolve();
      }
      const sleep = p.wake;
      const timer = setTimeout(done, Math.max(1, Math.min(retryInMs, pollMs)));
      function done() {
        clearTimeout(timer);
        p.wake = sleep;
        resolve();
      }
      p.wake = done;
    });
}
