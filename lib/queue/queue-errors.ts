import { ProxyError } from '../errors';
import { UpstreamFailure } from '../upstream/errors';

const RETRY_AFTER_SECONDS = '5';
const BUSY = 'The assistant is very busy right now. Please try again in a moment.';

export function queueFull(): ProxyError {
  return new ProxyError(503, 'queue_full', BUSY, {
    headers: { 'retry-after': RETRY_AFTER_SECONDS },
    detail: 'QUEUE_MAX_LENGTH requests already waiting on this instance',
  });
}

export function queueTimeout(maxWaitMs: number): ProxyError {
  return new ProxyError(503, 'queue_timeout', BUSY, {
    headers: { 'retry-after': RETRY_AFTER_SECONDS },
    detail: `no upstream capacity within QUEUE_MAX_WAIT_MS (${maxWaitMs} ms)`,
  });
}

/**
 * The provider's headers said to hold off longer than a request may wait: fail the way its 429 would have, so the
 * failover can try another model or provider instead.
 */
export function providerPaused(pausedMs: number): UpstreamFailure {
  const message = 'The assistant is busy right now. Please try again shortly.';
  const headers = { 'retry-after': String(Math.max(1, Math.ceil(pausedMs / 1000))) };
  const detail = `the provider's rate-limit headers said to hold off ${pausedMs} ms`;
  return new UpstreamFailure(
    503,
    'upstream_rate_limited',
    message,
    { retry: false, fallback: 'any' },
    {
      headers,
      detail,
    },
  );
}

/** `QUEUE_PREFER=fallback`: this provider has no room now, and a later route may; no retry, go on to it. */
export function providerSaturated(provider: string): UpstreamFailure {
  const detail = `provider ${provider} at its configured capacity; QUEUE_PREFER=fallback`;
  return new UpstreamFailure(503, 'upstream_saturated', BUSY, { retry: false, fallback: 'any' }, { detail });
}
