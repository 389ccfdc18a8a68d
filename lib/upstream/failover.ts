import type { FailoverPolicy } from '../config/failover';
import type { Internal } from '../internal';
import type { ChatRequest, Reply } from '../types';
import { abortableSleep, linkedAbort } from './abort';
import { abortError, UpstreamFailure } from './errors';
import { fallbackReply } from './fallback-reply';
import type { UpstreamTarget } from './target';

/** One way to answer: a model on a target (base URL + key). The first route is the requested model. */
export interface Route {
  readonly model: string;
  readonly target: UpstreamTarget;
}

export interface Served {
  readonly model: string | undefined;
  readonly provider: string | undefined;
  readonly attempts: number;
  /** `model`: a fallback model answered; `message`: every upstream failed and FALLBACK_MESSAGE was sent. */
  readonly fallback: 'none' | 'model' | 'message';
}

export interface ServedReply extends Reply {
  readonly served: Served;
}

/** The upstream as the handler sees it: retries and fallbacks are inside. */
export interface Upstream {
  open(request: ChatRequest, signal: AbortSignal): Promise<ServedReply>;
}

export interface FailoverOptions {
  readonly routes: (model: string) => readonly Route[];
  readonly policy: FailoverPolicy;
  readonly fallbackMessage: string | undefined;
  /** The backoff's jitter and the deadline's clock. */
  readonly internal: Internal;
}

/**
 * Tries each route in order, retrying one that advises it, but only before the first token: once a token has been
 * sent, the reply is committed. One deadline covers everything, and each timeout aborts its attempt.
 */
export function createFailover(options: FailoverOptions): Upstream {
  const { policy } = options;
  const { random, now } = options.internal;
  const timeouts = { firstTokenMs: policy.firstTokenTimeoutMs, idleMs: policy.idleTimeoutMs };

  const delayBefore = (failure: UpstreamFailure, attempt: number): number | undefined => {
    const asked = failure.advice.retryAfterMs;
    if (asked !== undefined) return asked <= policy.retryAfterMaxMs ? asked : undefined;
    return Math.round(random() * Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** (attempt - 1)));
  };

  return {
    async open(request, signal) {
      const deadlineAt = now() + policy.startDeadlineMs;
      const deadline = linkedAbort(signal, { ms: policy.startDeadlineMs, kind: 'deadline' });
      const burnt = new Set<string>(); // providers whose key failed (auth, quota): no point trying them again
      let last: UpstreamFailure | undefined;
      let attempts = 0;
      try {
        const routes = options.routes(request.model);
        for (const [index, route] of routes.entries()) {
          if (last && (last.advice.fallback === 'none' || burnt.has(route.target.provider))) continue;
          for (let attempt = 1; attempt <= policy.maxAttempts && !deadline.signal.aborted; attempt++) {
            attempts++;
            try {
              const mayFallBack = index < routes.length - 1;
              const reply = await route.target.open(request, route.model, deadline.signal, {
                firstTokenMs: timeouts.firstTokenMs,
                idleMs: timeouts.idleMs,
                mayFallBack,
              });
              deadline.clearTimer();
              const fallback = index === 0 ? ('none' as const) : ('model' as const);
              // Not `{ ...reply, served }`: Node 20's slow path (see lib/stream/respond.ts).
              const served = { model: route.model, provider: route.target.provider, attempts, fallback };
              return Object.assign({}, reply, { served });
            } catch (error) {
              if (!(error instanceof UpstreamFailure)) throw error;
              last = error;
              if (error.advice.fallback === 'other-credentials') burnt.add(route.target.provider);
              const wait =
                error.advice.retry && attempt < policy.maxAttempts ? delayBefore(error, attempt) : undefined;
              if (wait === undefined || now() + wait >= deadlineAt) break;
              await abortableSleep(wait, deadline.signal).catch(() => {});
            }
          }
          if (deadline.signal.aborted) break;
        }
      } finally {
        deadline.clearTimer();
      }
      // No failure recorded means no attempt ran: only a client that left before the first one gets here.
      if (signal.aborted || !last) throw abortError(signal);
      if (options.fallbackMessage && last.status >= 500) {
        const served = { model: undefined, provider: undefined, attempts, fallback: 'message' as const };
        return { ...fallbackReply(options.fallbackMessage), served };
      }
      throw last.afterAttempts(attempts);
    },
  };
}
