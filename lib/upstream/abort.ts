/**
 * Why we (not the client) aborted an upstream request. Carried as the AbortSignal's reason. `shutdown`: the server
 * is stopping and its grace period for replies in flight is over (lib/shutdown.ts).
 */
export class UpstreamTimeout extends Error {
  override readonly name = 'UpstreamTimeout';
  constructor(readonly kind: 'first_token' | 'idle' | 'total' | 'deadline' | 'shutdown' | 'moderation') {
    super(kind === 'shutdown' ? 'server shutdown grace period over' : `upstream ${kind} timeout`);
  }
}

export interface LinkedAbort {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
  /** Stops the timeout (e.g. the first token arrived) but keeps following the parent. */
  clearTimer(): void;
  /** Detaches from the parent and clears the timer, so finished requests keep nothing alive. */
  dispose(): void;
}

/**
 * An abort controller (a `LinkController`, below) that also fires when `parent` does (the client's signal, from
 * `Platform.clientSignal`, or an outer deadline; none for a reply no single client owns), and, with `timeoutMs`, when
 * that time has passed, with an UpstreamTimeout of `kind` as the reason. Every timeout is an abort, not a race: the
 * upstream request really stops, and stops billing.
 */
export function linkedAbort(
  parent: AbortSignal | undefined,
  timeout?: { ms: number; kind: UpstreamTimeout['kind'] },
): LinkedAbort {
  const controller = new LinkController();
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  const timer = timeout
    ? setTimeout(() => controller.abort(new UpstreamTimeout(timeout.kind)), timeout.ms)
    : undefined;
  return {
    signal: controller.signal,
    abort: (reason?: unknown) => controller.abort(reason),
    clearTimer: () => clearTimeout(timer),
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

/** Resolves after `ms`, or rejects at once with the signal's reason if it aborts first. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The signal of a `linkedAbort`: an `AbortSignal` to whoever listens (undici, the queue, a sleep), built as a plain
 * `EventTarget`. Node 20 builds its own signals on a slow path, an `EventTarget` given another prototype: 3.3-4.5 µs
 * each against 0.04-0.14 on Node 24 (micro-benchmark), and V8 11 keeps such an object, and what it points to, through
 * the young generation's collections (see the README's Benchmarks). A request makes four of these (the reply's total
 * timeout, the failover's deadline, the attempt's first-token timeout, and on the Node server the client's:
 * server/client-signal.ts): −8.3% main-thread instructions per request on Node 20 with them and the session's other
 * changes (`npm run bench:instructions -- --ref`). `fetch` takes only the platform's own: see `platformSignal`.
 */
class LinkSignal extends EventTarget implements AbortSignal {
  aborted = false;
  reason: unknown = undefined;
  #onabort: ((this: AbortSignal, event: Event) => unknown) | null = null;

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** As the platform's: a listener of its own, in the order it was first set, until it is set to null. */
  get onabort(): ((this: AbortSignal, event: Event) => unknown) | null {
    return this.#onabort;
  }

  set onabort(handler: ((this: AbortSignal, event: Event) => unknown) | null) {
    if (handler && !this.#onabort) this.addEventListener('abort', this);
    if (!handler) this.removeEventListener('abort', this);
    this.#onabort = handler;
  }

  /** The `onabort` listener (the signal is its own listener object: nothing to allocate per signal). */
  handleEvent(event: Event): void {
    this.#onabort?.call(this, event);
  }
}

/** `AbortController`'s `abort` for a `LinkSignal`: once, with an `AbortError` if no reason is given, as the platform's. */
class LinkController {
  readonly signal = new LinkSignal();

  abort(reason?: unknown): void {
    const { signal } = this;
    if (signal.aborted) return;
    signal.aborted = true;
    signal.reason =
      reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    signal.dispatchEvent(new Event('abort'));
  }
}

/**
 * The signal as `fetch` takes it: some runtimes check that it is their own `AbortSignal`, so a linked one is bridged
 * to a platform signal that aborts with it (one per call, on the edge only: the Node server calls undici's `request`,
 * which takes any `EventTarget`).
 */
export function platformSignal(signal: AbortSignal): AbortSignal {
  if (!(signal instanceof LinkSignal)) return signal;
  const controller = new AbortController();
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller.signal;
}
