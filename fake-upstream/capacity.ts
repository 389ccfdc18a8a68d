import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http';

/**
 * An upstream that runs out of room, as a real provider does. Everything is off unless set: without any of
 * `maxConcurrent`, `requestsPerWindow` and `rateLimitHeaders` the fake neither refuses nor sends rate-limit headers.
 * With any of them, every chat response (200s, scripted statuses, and the 429s below) carries OpenAI's
 * `x-ratelimit-*` headers, and a refused request is answered at once with OpenAI's 429 (`rate_limit_exceeded`) and a
 * `retry-after` in seconds. A refused request is not a call: it takes no scripted behaviour and is not in `calls`.
 */
export interface CapacityOptions {
  /** At most this many chat streams open at once: from the moment a request is accepted until its response ends or the client goes away. */
  readonly maxConcurrent?: number;
  /** The `retry-after` (seconds) of a 429 for `maxConcurrent`. Default 1. */
  readonly retryAfterSeconds?: number;
  /**
   * A fixed window that starts at the first request (and again at the first request after it ended): beyond `limit`
   * accepted requests, 429 with `retry-after` = the seconds until the window ends, rounded up.
   */
  readonly requestsPerWindow?: { readonly limit: number; readonly windowMs: number };
  /** Figures for the next chat response's headers, which the fake then keeps to (see {@link ScriptedRateLimit}). */
  readonly rateLimitHeaders?: ScriptedRateLimit;
}

/**
 * What the next accepted chat response reports, and from then on enforces: after it, `remainingRequests` more requests
 * are accepted until `resetRequestsMs` has passed, any beyond get a 429. Once that time has passed the script is spent
 * and the headers come from `requestsPerWindow` (or a large default budget) again.
 */
export interface ScriptedRateLimit {
  /** Default: `requestsPerWindow.limit`, else 10,000. */
  readonly limitRequests?: number;
  /** Default: `limitRequests - 1`. */
  readonly remainingRequests?: number;
  /** Default 60,000. */
  readonly resetRequestsMs?: number;
  /** Reported only, never enforced. Default 2,000,000. */
  readonly limitTokens?: number;
  /** Reported only. Default: `limitTokens`. */
  readonly remainingTokens?: number;
  /** Reported only. Default 0. */
  readonly resetTokensMs?: number;
}

/** What the fake counts of its capacity; `reset()` clears it. */
export interface CapacityStats {
  /** Chat streams open now (accepted, not yet ended or aborted). */
  readonly inFlight: number;
  /** The most streams ever open at once since the start or the last `reset()`. */
  readonly peakInFlight: number;
  /** 429s answered for capacity (not scripted `status` behaviours). */
  readonly rejected: number;
  /** When each of those 429s was answered (`performance.now()`), to prove a client paused. */
  readonly rejectedAt: readonly number[];
}

export interface FakeCapacity extends CapacityStats {
  /**
   * Decides on a request before anything else is done with it: a refused one is answered here (and `false`
   * returned); an accepted chat request counts as open until `res` closes and, when capacity is configured, gets its
   * rate-limit headers set on `res`.
   * Requests that are not chat completions, and those with the wrong key (`apiKey`), pass untouched.
   */
  admit(req: IncomingMessage, res: ServerResponse, apiKey: string | undefined): boolean;
  /** Replaces the options (until `reset()`), starting new windows and arming a new script; counters are kept. */
  set(options: CapacityOptions): void;
  /** Back to the options given at start, with the counters cleared and the open streams forgotten. */
  reset(): void;
}

interface Budget {
  readonly limit: number;
  used: number;
  readonly endsAt: number;
}

const DEFAULT_REQUESTS = { limit: 10_000, windowMs: 60_000 };
const DEFAULT_TOKENS = 2_000_000;

export function createCapacity(initial: CapacityOptions): FakeCapacity {
  let options = initial;
  let open = new Set<ServerResponse>();
  let peak = 0;
  const rejectedAt: number[] = [];
  let window: Budget | undefined;
  let script: ScriptedRateLimit | undefined = initial.rateLimitHeaders;
  let scripted: (Budget & { readonly tokens: ScriptedRateLimit }) | undefined;

  /** The budget a request at `now` counts against: a running script, else the (renewed) window. */
  const budget = (now: number): Budget & { readonly tokens?: ScriptedRateLimit } => {
    if (scripted && now >= scripted.endsAt) scripted = undefined;
    if (scripted) return scripted;
    if (script) {
      const limit = script.limitRequests ?? options.requestsPerWindow?.limit ?? DEFAULT_REQUESTS.limit;
      const remaining = script.remainingRequests ?? limit - 1;
      // The request being decided on is the one that reports `remaining`, so it is counted already but for itself.
      scripted = {
        limit,
        used: Math.max(0, limit - remaining - 1),
        endsAt: now + (script.resetRequestsMs ?? 60_000),
        tokens: script,
      };
      script = undefined;
      return scripted;
    }
    if (!window || now >= window.endsAt) {
      const { limit, windowMs } = options.requestsPerWindow ?? DEFAULT_REQUESTS;
      window = { limit, used: 0, endsAt: now + windowMs };
    }
    return window;
  };

  const headers = (now: number, current: Budget & { readonly tokens?: ScriptedRateLimit }) => {
    const limitTokens = current.tokens?.limitTokens ?? DEFAULT_TOKENS;
    return {
      'x-ratelimit-limit-requests': String(current.limit),
      'x-ratelimit-remaining-requests': String(Math.max(0, current.limit - current.used)),
      'x-ratelimit-reset-requests': openAiDuration(current.endsAt - now),
      'x-ratelimit-limit-tokens': String(limitTokens),
      'x-ratelimit-remaining-tokens': String(current.tokens?.remainingTokens ?? limitTokens),
      'x-ratelimit-reset-tokens': openAiDuration(current.tokens?.resetTokensMs ?? 0),
    };
  };

  /** Open from now until the response ends or the client goes away (counted whether capacity is on or not). */
  const track = (res: ServerResponse) => {
    const streams = open;
    streams.add(res);
    peak = Math.max(peak, streams.size);
    res.on('close', () => streams.delete(res));
  };

  const set = (next: CapacityOptions) => {
    options = next;
    window = undefined;
    scripted = undefined;
    script = next.rateLimitHeaders;
  };

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    retryAfterSeconds: number,
    message: string,
    rateHeaders: Record<string, string>,
  ) => {
    rejectedAt.push(performance.now());
    req.resume(); // The body is not wanted: let it drain so the connection can be kept alive.
    sendJson(
      res,
      429,
      { error: { message, type: 'requests', param: null, code: 'rate_limit_exceeded' } },
      { ...rateHeaders, 'retry-after': String(retryAfterSeconds) },
    );
    return false;
  };

  return {
    get inFlight() {
      return open.size;
    },
    get peakInFlight() {
      return peak;
    },
    get rejected() {
      return rejectedAt.length;
    },
    rejectedAt,
    admit(req, res, apiKey) {
      const configured =
        options.maxConcurrent !== undefined ||
        options.requestsPerWindow !== undefined ||
        options.rateLimitHeaders !== undefined;
      const chat = req.method === 'POST' && req.url?.endsWith('/chat/completions');
      const authorised = apiKey === undefined || req.headers.authorization === `Bearer ${apiKey}`;
      if (!chat || !authorised) return true;
      if (!configured) {
        track(res);
        return true;
      }
      const now = performance.now();
      const current = budget(now);
      if (current.used >= current.limit) {
        const waitMs = wholeMs(current.endsAt - now);
        return refuse(
          req,
          res,
          Math.max(1, Math.ceil(waitMs / 1000)),
          `Rate limit reached for requests in organization org-fake on requests per window: Limit ${current.limit}, Used ${current.used}, Requested 1. Please try again in ${openAiDuration(waitMs)}.`,
          headers(now, current),
        );
      }
      if (options.maxConcurrent !== undefined && open.size >= options.maxConcurrent) {
        const retryAfter = options.retryAfterSeconds ?? 1;
        return refuse(
          req,
          res,
          retryAfter,
          `Rate limit reached for requests in organization org-fake on concurrent requests: Limit ${options.maxConcurrent}, Used ${open.size}, Requested 1. Please try again in ${retryAfter}s.`,
          headers(now, current),
        );
      }
      current.used++;
      track(res);
      for (const [name, value] of Object.entries(headers(now, current))) res.setHeader(name, value);
      return true;
    },
    set,
    reset() {
      set(initial);
      open = new Set();
      peak = 0;
      rejectedAt.length = 0;
    },
  };
}

/** OpenAI's (Go's) duration format, as in `x-ratelimit-reset-requests`: `850ms`, `2s`, `1.5s`, `1m30s`, `6m0s`, `1h0m0s`. */
export function openAiDuration(ms: number): string {
  const whole = wholeMs(ms);
  if (whole === 0) return '0s';
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = `${(whole % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** Whole ms, rounded up, but not for float noise: `(now + 2000) - now` may be 2000.0000000002. */
function wholeMs(ms: number): number {
  return Math.max(0, Math.ceil(ms - 1e-6));
}
