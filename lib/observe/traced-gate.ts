import type { RateLimitGate } from '../limits/gate';
import type { RequestTraces } from './request-traces';
import { markFailed, tracer } from './spans';

/**
 * The limiter with a `ratelimit.admit` span around each admission: how long the shared store took, and what it
 * decided (`allowed`, `fail_local`, `fail_open`) or why it refused (`error.type`: `rate_limited`...). Settling
 * happens after the reply, in the background, and is not traced. Arguments pass through untouched, whatever they are.
 */
export function tracedGate(gate: RateLimitGate, traces: RequestTraces): RateLimitGate {
  return {
    ...gate,
    async admit(...args) {
      const parent = traces.of(args[0]);
      if (!parent) return gate.admit(...args);
      const span = tracer().startSpan('ratelimit.admit', {}, parent);
      try {
        const admission = await gate.admit(...args);
        span.setAttribute('ratelimit', admission.decision);
        return admission;
      } catch (error) {
        markFailed(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
  };
}
