import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { ProxyError } from './errors';
import { redact } from './redact';

const UNAVAILABLE = 'The assistant is unavailable right now. Please try again in a moment.';

/** The client went away; nobody will read this answer, but the log line still needs a status. */
export function clientClosed(): ProxyError {
  return new ProxyError(499, 'client_closed_request', 'The client closed the request.', {
    type: 'client_closed_request',
  });
}

/**
 * Maps a failure before the first token to an HTTP answer. End users see a short, friendly message; the upstream's
 * own words (which can echo part of the key, hostnames or quotas) go to `detail`, redacted, for the log only.
 */
export function upstreamError(error: unknown, secrets: readonly string[]): ProxyError {
  if (error instanceof ProxyError) return error;
  if (error instanceof APIUserAbortError) return clientClosed();
  const detail = redact(describe(error), secrets);
  const opts = { type: 'upstream_error' as const, detail, cause: error };
  if (error instanceof APIConnectionTimeoutError) {
    return new ProxyError(
      504,
      'upstream_timeout',
      'The assistant took too long to answer. Please try again.',
      opts,
    );
  }
  if (error instanceof APIConnectionError || !(error instanceof APIError)) {
    return new ProxyError(502, 'upstream_unreachable', UNAVAILABLE, opts);
  }
  const status = error.status ?? 0;
  const code = error.code ?? '';
  if (status === 401 || status === 403) {
    return new ProxyError(
      502,
      'upstream_auth',
      'The assistant is not set up correctly (the server could not sign in to the AI provider). Please let the site owner know.',
      opts,
    );
  }
  if (status === 429 && code === 'insufficient_quota') {
    return new ProxyError(503, 'upstream_quota', UNAVAILABLE, opts);
  }
  if (status === 429) {
    const retryAfter = error.headers?.get('retry-after');
    const headers: Record<string, string> =
      retryAfter && /^\d{1,5}$/.test(retryAfter) ? { 'retry-after': retryAfter } : {};
    return new ProxyError(
      503,
      'upstream_rate_limited',
      'The assistant is busy right now. Please try again shortly.',
      {
        ...opts,
        headers,
      },
    );
  }
  if (status === 404 || code === 'model_not_found') {
    return new ProxyError(502, 'upstream_model', UNAVAILABLE, opts);
  }
  if (status === 400 && code === 'context_length_exceeded') {
    return new ProxyError(
      400,
      'context_too_long',
      'This conversation is too long for the assistant. Start a new chat or shorten your message.',
      opts,
    );
  }
  if (status >= 500) return new ProxyError(502, 'upstream_unavailable', UNAVAILABLE, opts);
  return new ProxyError(502, 'upstream_error', UNAVAILABLE, opts);
}

/** A failure after tokens were sent: the status is already 200, so this text goes inside the stream. */
export function midStreamError(error: unknown, secrets: readonly string[]): ProxyError {
  if (error instanceof ProxyError) return error;
  if (error instanceof APIUserAbortError) return clientClosed();
  return new ProxyError(502, 'upstream_interrupted', 'The reply was interrupted. Please try again.', {
    type: 'upstream_error',
    detail: redact(describe(error), secrets),
    cause: error,
  });
}

function describe(error: unknown): string {
  if (error instanceof APIError)
    return `${error.status ?? 'no status'} ${error.code ?? ''} ${error.message}`.trim();
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}
