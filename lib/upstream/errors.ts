import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai/error';
import { briefOutage, clientClosed, ProxyError, type ProxyErrorOptions } from '../errors';
import { redact } from '../redact';
import { UpstreamTimeout } from './abort';

const UNAVAILABLE = 'The assistant is unavailable right now. Please try again in a moment.';

/**
 * An upstream failure before the first token, with what may still save the request: retrying the same upstream,
 * and/or falling back to the next one (`other-credentials`: only one that uses another key, since the same key
 * would fail the same way).
 */
export class UpstreamFailure extends ProxyError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly advice: {
      readonly retry: boolean;
      readonly fallback: 'any' | 'other-credentials' | 'none';
      /** What the upstream asked for (`retry-after-ms` / `retry-after`), in ms. */
      readonly retryAfterMs?: number;
    },
    options: ProxyErrorOptions = {},
  ) {
    super(status, code, message, { type: 'upstream_error', ...options });
    this.options = options;
  }

  private readonly options: ProxyErrorOptions;

  /** The same failure, with the attempt count in its log detail and in the log line's own `attempts`. */
  afterAttempts(attempts: number): UpstreamFailure {
    const detail = `${this.detail ?? this.code} (after ${attempts} attempt${attempts === 1 ? '' : 's'})`;
    return new UpstreamFailure(this.status, this.code, this.message, this.advice, {
      ...this.options,
      detail,
      attempts,
    });
  }
}

/** Why the upstream request was aborted: one of our timeouts, or the client leaving. */
export function abortError(signal: AbortSignal): ProxyError {
  const reason: unknown = signal.reason;
  if (!(reason instanceof UpstreamTimeout)) return clientClosed();
  const detail = `aborted: ${reason.message}`;
  switch (reason.kind) {
    case 'first_token':
    case 'deadline':
    case 'moderation':
      return upstreamTimeout({ detail });
    case 'idle':
      return new ProxyError(504, 'upstream_stalled', 'The assistant stopped responding. Please try again.', {
        type: 'upstream_error',
        detail,
      });
    case 'total':
      return new ProxyError(504, 'reply_too_long', 'The reply took too long and was stopped.', {
        type: 'upstream_error',
        detail,
      });
    case 'shutdown':
      // Nothing is wrong with the request: another instance (or this one, restarted) will answer it.
      return briefOutage(
        'server_restarting',
        'The server is restarting. Please send your message again.',
        detail,
      );
  }
}

/**
 * Maps a failure before the first token to an HTTP answer plus retry advice. End users see a short, friendly message;
 * the upstream's own words (which can echo part of the key, hostnames or quotas) go to `detail`, redacted, for the log.
 */
export function upstreamError(error: unknown, secrets: readonly string[]): UpstreamFailure {
  if (error instanceof UpstreamFailure) return error;
  const opts = { detail: redact(describe(error), secrets), cause: error };
  if (error instanceof APIConnectionTimeoutError) return upstreamTimeout(opts);
  if (error instanceof APIConnectionError || !(error instanceof APIError)) {
    return new UpstreamFailure(
      502,
      'upstream_unreachable',
      UNAVAILABLE,
      { retry: true, fallback: 'any' },
      opts,
    );
  }
  const status = error.status ?? 0;
  const code = error.code ?? '';
  if (status === 401 || status === 403) {
    const message =
      'The assistant is not set up correctly (the server could not sign in to the AI provider). Please let the site owner know.';
    return new UpstreamFailure(
      502,
      'upstream_auth',
      message,
      { retry: false, fallback: 'other-credentials' },
      opts,
    );
  }
  if (status === 429 && (code === 'insufficient_quota' || error.type === 'insufficient_quota')) {
    return new UpstreamFailure(
      503,
      'upstream_quota',
      UNAVAILABLE,
      { retry: false, fallback: 'other-credentials' },
      opts,
    );
  }
  if (status === 429) {
    const retryAfterMs = retryAfter(error.headers);
    const message = 'The assistant is busy right now. Please try again shortly.';
    // If every retry and fallback fails, the client still learns when to come back.
    const headers = { 'retry-after': String(Math.max(1, Math.ceil((retryAfterMs ?? 10_000) / 1000))) };
    const advice = {
      retry: true,
      fallback: 'any' as const,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
    return new UpstreamFailure(503, 'upstream_rate_limited', message, advice, { ...opts, headers });
  }
  if (status === 404 || code === 'model_not_found') {
    return new UpstreamFailure(502, 'upstream_model', UNAVAILABLE, { retry: false, fallback: 'any' }, opts);
  }
  if (status === 400 && code === 'context_length_exceeded') {
    const message =
      'This conversation is too long for the assistant. Start a new chat or shorten your message.';
    return new UpstreamFailure(400, 'context_too_long', message, { retry: false, fallback: 'none' }, opts);
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new UpstreamFailure(
      status === 503 ? 503 : 502,
      'upstream_unavailable',
      UNAVAILABLE,
      { retry: true, fallback: 'any' },
      opts,
    );
  }
  return new UpstreamFailure(502, 'upstream_error', UNAVAILABLE, { retry: false, fallback: 'none' }, opts);
}

/** No first token in time: worth another try, here or on a fallback. */
function upstreamTimeout(options: ProxyErrorOptions): UpstreamFailure {
  const message = 'The assistant took too long to answer. Please try again.';
  return new UpstreamFailure(504, 'upstream_timeout', message, { retry: true, fallback: 'any' }, options);
}

/** A failure after tokens were sent: the status is already 200, so this text goes inside the stream. */
export function midStreamError(error: unknown, secrets: readonly string[]): ProxyError {
  if (error instanceof ProxyError) return error;
  return new ProxyError(502, 'upstream_interrupted', 'The reply was interrupted. Please try again.', {
    type: 'upstream_error',
    detail: redact(describe(error), secrets),
    cause: error,
  });
}

/** `retry-after-ms` (OpenAI's precise one), else `retry-after` in seconds or as an HTTP date. */
function retryAfter(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get('retry-after-ms'));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
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
