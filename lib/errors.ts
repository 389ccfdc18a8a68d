/** The `type` field of an error body, grouped the way OpenAI's own API groups them so clients already know them. */
export type ErrorType = 'invalid_request_error' | 'upstream_error' | 'server_error' | 'client_closed_request';

export interface ProxyErrorOptions {
  type?: ErrorType;
  /** The request field at fault (e.g. `messages[2].content`), for 400s. */
  param?: string;
  headers?: Record<string, string>;
  /** Internal detail for the log line only: never sent to the client. */
  detail?: string;
  /** Upstream attempts made before giving up, for the log line's `attempts` (and the retries metric). */
  attempts?: number;
  cause?: unknown;
}

/**
 * An expected failure that knows how to become an HTTP answer. `message` is shown to end users, so it is short,
 * friendly and free of upstream internals; anything else belongs in `detail`, which only reaches the log.
 */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly type: ErrorType;
  readonly param: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly detail: string | undefined;
  readonly attempts: number | undefined;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options: ProxyErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.type = options.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = options.param;
    this.headers = options.headers ?? {};
    this.detail = options.detail;
    this.attempts = options.attempts;
  }
}

/** The client went away; nobody will read this answer, but the log line still needs a status. */
export function clientClosed(): ProxyError {
  return new ProxyError(499, 'client_closed_request', 'The client closed the request.', {
    type: 'client_closed_request',
  });
}

/** How long a client should wait after a passing outage of ours (limiter store, sign-in keys) before trying again. */
const BUSY_RETRY_AFTER_SECONDS = 5;

/** A 503 for something of ours that is briefly unavailable: the client may retry in a few seconds. */
export function briefOutage(code: string, message: string, detail: string): ProxyError {
  return new ProxyError(503, code, message, {
    headers: { 'retry-after': String(BUSY_RETRY_AFTER_SECONDS) },
    detail,
  });
}

/** A 429: the caller used up a quota; `waitSeconds` tells it when to come back. */
export function quotaExceeded(
  code: string,
  message: string,
  waitSeconds: number,
  headers: Record<string, string>,
): ProxyError {
  return new ProxyError(429, code, message, {
    headers: { ...headers, 'retry-after': String(waitSeconds) },
  });
}

/** Anything that is not a ProxyError is a bug: mask it, so no stack trace or internal message ever leaves. */
export function toProxyError(error: unknown): ProxyError {
  if (error instanceof ProxyError) return error;
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new ProxyError(500, 'internal_error', 'Something went wrong on our side. Please try again.', {
    detail,
    cause: error,
  });
}

/** The one place an error becomes HTTP: `{ error: { message, type, code, param?, request_id } }`. */
export function errorResponse(error: ProxyError, headers: Record<string, string>): Response {
  const requestId = headers['x-request-id'];
  const body = {
    error: {
      message: error.message,
      type: error.type,
      code: error.code,
      ...(error.param === undefined ? {} : { param: error.param }),
      ...(requestId === undefined ? {} : { request_id: requestId }),
    },
  };
  return new Response(JSON.stringify(body), {
    status: error.status,
    // Not a spread: see lib/stream/respond.ts (a flood of refusals takes this path).
    headers: Object.assign({}, headers, error.headers, { 'content-type': 'application/json; charset=utf-8' }),
  });
}
