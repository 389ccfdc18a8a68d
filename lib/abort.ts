export interface LinkedAbort {
  readonly signal: AbortSignal;
  abort(): void;
  /** Detaches from the parent, so a long-lived parent signal does not keep finished requests alive. */
  dispose(): void;
}

/** An abort controller that also fires when `parent` (the client's `req.signal`) does. */
export function linkedAbort(parent: AbortSignal): LinkedAbort {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    dispose: () => parent.removeEventListener('abort', onAbort),
  };
}
