import { InFlightSet } from './in-flight';
import { type LinkedAbort, linkedAbort, UpstreamTimeout } from './upstream/abort';
import type { ServedReply } from './upstream/failover';

/**
 * After the grace period: how long aborted replies get to write their end marker, be charged and be logged. Short,
 * since platforms kill soon after (an aborted reply ends at once; only a client that stopped reading takes longer).
 */
const SETTLE_MS = 1_000;

/** A reply's abort as the shutdown tracks it. */
export interface TrackedAbort extends LinkedAbort {
  /** Its first token is in: from now until `dispose` it counts as a stream in flight (the metrics gauge). */
  streaming(): void;
}

/**
 * `first` (a reply, once its first token is in), with `abort` counted as a stream in flight from then on; not the
 * operator's `FALLBACK_MESSAGE`, which no upstream streams.
 */
export function countStreaming(abort: TrackedAbort, first: Promise<ServedReply>): Promise<ServedReply> {
  return first.then((reply) => {
    if (reply.served.fallback !== 'message') abort.streaming();
    return reply;
  });
}

/** What the chat handler needs from the shutdown: an abort for each reply that a drain can cut. */
export interface ShutdownHooks {
  /**
   * `linkedAbort`, plus: a drain waits until it is disposed, and aborts it (reason: UpstreamTimeout `shutdown`) when
   * the grace period is over. Once a drain has begun aborting, a new one starts aborted.
   */
  linkedAbort(
    parent: AbortSignal | undefined,
    timeout: { ms: number; kind: UpstreamTimeout['kind'] },
  ): TrackedAbort;
  /** Work a drain waits for has begun (a request being handled, a charge and log line); call the result when over. */
  hold(): () => void;
}

export interface Shutdown extends ShutdownHooks {
  /**
   * Resolves once nothing is in flight, or after `graceMs`: then every reply still open is aborted, so it ends with
   * an error in its own protocol and is charged and logged as usual, and this resolves once those have ended too
   * (or after a second more, for a client that stopped reading).
   */
  drain(graceMs: number): Promise<void>;
  /**
   * Upstream replies streaming right now: from their first token to their end. A metrics gauge: requests still in
   * moderation or waiting in the queue are not streams (the queue has a gauge of its own).
   */
  streaming(): number;
}

/**
 * Counts what is in flight and cuts it at the deadline. The aborts are kept in a set instead of listening on one
 * long-lived AbortSignal: a signal with a listener per concurrent request would trip Node's listener-leak warning.
 */
export function createShutdown(): Shutdown {
  const open = new InFlightSet<LinkedAbort>();
  const counts = { streams: 0 };
  let busy = 0;
  let stopped: UpstreamTimeout | undefined;
  const waiters = new Set<() => void>();

  const hold = () => {
    busy++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      busy--;
      // A reply's end releases its abort first and only then hands its charge to `waitUntil` (a new hold), in the
      // same tick: look once that tick is over, so the gap between the two is not mistaken for quiet.
      queueMicrotask(() => {
        if (busy === 0) for (const wake of waiters) wake();
      });
    };
  };

  /** True once nothing is in flight, false if `ms` passed first. */
  const quiet = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (busy === 0) return resolve(true);
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        waiters.delete(wake);
        resolve(false);
      }, ms);
      waiters.add(wake);
    });

  return {
    hold,
    streaming: () => counts.streams,
    linkedAbort(parent, timeout) {
      const abort = linkedAbort(parent, timeout);
      if (stopped) abort.abort(stopped);
      return tracked(abort, open.add(abort), hold(), counts);
    },
    async drain(graceMs) {
      const done = await quiet(graceMs);
      stopped = new UpstreamTimeout('shutdown');
      if (done) return;
      for (const abort of open.values()) abort.abort(stopped);
      await quiet(SETTLE_MS);
    },
  };
}

/**
 * `abort` as the shutdown tracks it: a stream in flight from `streaming` until `dispose`, which also takes it out of
 * the drain's reach (`close`) and ends the work the drain waits for (`release`).
 */
function tracked(
  abort: LinkedAbort,
  close: () => void,
  release: () => void,
  counts: { streams: number },
): TrackedAbort {
  // 0: not streaming yet; 1: a stream in flight; -1: disposed (it has no stream left to count).
  let state = 0;
  // Every member named, not `...abort` and two more: Node 20 builds that on a slow path (about 2 µs).
  return {
    signal: abort.signal,
    abort: abort.abort,
    clearTimer: abort.clearTimer,
    streaming: () => {
      if (state !== 0) return;
      state = 1;
      counts.streams++;
    },
    dispose: () => {
      if (state === 1) counts.streams--;
      state = -1;
      abort.dispose();
      close();
      release();
    },
  };
}
