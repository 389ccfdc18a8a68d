import type { UnknownPriceNotice } from './cost/pricing';
import type { ProxyError } from './errors';
import type { Usage } from './types';

/** One structured line per request. It never holds a key, a token, a header value or message text. */
export interface RequestLog {
  readonly level: 'info' | 'warn' | 'error';
  readonly msg: 'chat';
  readonly request_id: string;
  readonly status: number;
  readonly outcome: 'complete' | 'error' | 'cancelled' | 'rejected';
  readonly model?: string;
  readonly protocol?: 'ui' | 'text';
  readonly ttft_ms?: number;
  /** Parameters the upstream refused and the request was fixed for, once per model (`o3: max_tokens→max_completion_tokens`). */
  readonly adapted?: string;
  /** Message parts left out that were neither text nor UI-only: tool calls, old attachments, unknown types. */
  readonly dropped_parts?: number;
  /** The oldest messages left out so the conversation fit the caps (`HISTORY_OVERFLOW=trim`). */
  readonly trimmed?: number;
  /** Upstream attempts before the first token, retries and fallbacks included; also when they all failed. */
  readonly attempts?: number;
  /** `model` when a fallback model answered, `message` when FALLBACK_MESSAGE did. */
  readonly fallback?: 'model' | 'message';
  readonly duration_ms: number;
  readonly usage?: {
    prompt_tokens: number;
    /** The part of the prompt read from the provider's cache, when it says (it is billed cheaper). */
    cached_tokens?: number;
    completion_tokens: number;
    total_tokens: number;
  };
  /**
   * What this request made the deployment spend, in USD, from the model's price (lib/cost): 0 for a cache hit or a
   * follower of a coalesced reply, `unknown` for a model without a price (never a silent 0).
   */
  readonly cost_usd?: number | 'unknown';
  /** The rate-limit key: `ip:203.0.113.7`, or a verified caller id (`token:alice`, `jwt:<sub>`); never a token. */
  readonly caller?: string;
  /**
   * `allowed` by the shared store; `fail_local` when it was unavailable and this instance's own count decided;
   * `fail_open` when it was unavailable and the operator chose to serve without limits.
   */
  readonly ratelimit?: 'allowed' | 'fail_local' | 'fail_open';
  readonly ratelimit_error?: string;
  readonly budget_error?: string;
  /** With `MODERATION=input`: what the check of the last user message said (never the message itself). */
  readonly moderation?: 'passed' | 'flagged' | 'unavailable';
  /** The categories a flagged message was flagged for (`harassment`, `violence`...). */
  readonly moderation_categories?: readonly string[];
  /** Why the moderation endpoint could not answer, redacted. */
  readonly moderation_error?: string;
  /** A reply shared by identical requests in flight: this request produced it, or followed one already running. */
  readonly coalesced?: 'leader' | 'follower';
  /** It followed a leader that vanished before its first token, then claimed the reply again (and so led it). */
  readonly took_over?: boolean;
  /** With a cache TTL: the reply was replayed from the cache, produced afresh, or the request asked not to use it. */
  readonly cache?: 'hit' | 'miss' | 'bypass';
  /** `GET /api/chat/{chatId}/stream`: a reply picked up again by its chat id. */
  readonly resumed?: boolean;
  /** How long the request waited for upstream capacity (a learnt pause and the line), when it waited at all. */
  readonly queue_wait_ms?: number;
  /** The shared reply log failed and the request went on without it, redacted. */
  readonly reply_log_error?: string;
  readonly error_code?: string;
  /** Internal, redacted detail (e.g. what the upstream said). Never sent to the client. */
  readonly error_detail?: string;
}

/** What is known about a request before it ends: everything but how it ended. */
export type RequestContext = Omit<RequestLog, 'level' | 'status' | 'outcome' | 'duration_ms'>;

/** Every line the proxy writes: one per request, and the odd line about the proxy itself (an unpriced model). */
export type LogLine = RequestLog | UnknownPriceNotice;

export type Logger = (line: LogLine) => void;

/** A request's own line: what metrics count and traces end on; other lines pass them by. */
export const isRequestLine = (line: LogLine): line is RequestLog => line.msg === 'chat';

export const jsonLogger: Logger = (line) => {
  const text = JSON.stringify(line);
  if (line.level === 'error') console.error(text);
  else console.log(text);
};

export function usageFields(usage: Usage | undefined): Pick<RequestLog, 'usage'> {
  if (!usage) return {};
  // Not a spread followed by properties, which Node 20 builds on a slow path (see lib/stream/respond.ts).
  const counts = { prompt_tokens: usage.promptTokens };
  if (usage.cachedPromptTokens) Object.assign(counts, { cached_tokens: usage.cachedPromptTokens });
  return {
    usage: Object.assign(counts, {
      completion_tokens: usage.completionTokens,
      total_tokens: usage.totalTokens,
    }),
  };
}

/** Failures that the operator must act on are `error`; a client's own mistake or departure is `warn`/`info`. */
export function errorFields(
  error: ProxyError,
): Pick<RequestLog, 'level' | 'error_code' | 'error_detail' | 'attempts'> {
  // A reply cut short by a restart is routine (a deploy), not an outage to act on.
  const outage = error.status >= 500 && error.code !== 'server_restarting';
  const level = outage ? 'error' : error.status === 499 ? 'info' : 'warn';
  return {
    level,
    error_code: error.code,
    ...(error.detail === undefined ? {} : { error_detail: error.detail }),
    // A request the upstream failed outright: its retries count as much as those of a reply that started.
    ...(error.attempts === undefined ? {} : { attempts: error.attempts }),
  };
}
