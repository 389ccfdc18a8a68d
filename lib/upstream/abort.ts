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
 * An abort controller that also fires when `parent` does (the client's `req.signal`, or an outer deadline; none for
 * a reply no single client owns), and, with `timeoutMs`, when that time has passed, with an UpstreamTimeout of `kind`
 * as the reason. Every timeout is an abort, not a race: the upstream request really stops, and stops billing.
 */
export function linkedAbort(
  parent: AbortSignal | undefined,
  timeout?: { ms: number; kind: UpstreamTimeout['kind'] },
): LinkedAbort {
  const controller = new AbortController();
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
