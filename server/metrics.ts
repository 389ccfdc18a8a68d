import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ProxyReadings } from '../lib/create-proxy';
import { isRequestLine, type Logger, type RequestLog } from '../lib/log';

/**
 * Prometheus metrics, derived from the one log line every request ends with: the request path itself is untouched,
 * and whatever the log knows, the metrics know. Node only (`prom-client`), hence in server/: never in the edge bundle.
 *
 * Every label has a small, fixed set of values: statuses, outcomes, error codes, the configured models. Nothing that
 * grows with traffic (a caller, an IP, a request id) is ever a label.
 */
export interface ProxyMetrics {
  /** Its own registry, not prom-client's global one, so two proxies (or tests) never share counts. */
  readonly registry: Registry;
  /** Wraps the request logger: each line is counted, then passed on unchanged. */
  logger(next: Logger): Logger;
  /** What the proxy holds right now, read at each scrape (no bookkeeping on the request path). */
  watch(read: () => ProxyReadings): void;
}

export interface MetricsOptions {
  /** The models a `model` label may name (`ALLOWED_MODELS` and `FALLBACK_MODELS`); any other is `other`. */
  readonly models: readonly string[];
  /** Node's own process metrics (CPU, memory, event-loop lag, GC) next to ours. Default: true. */
  readonly processMetrics?: boolean;
}

/** The `model` label of a line that names none (refused before its body was read). */
export const NO_MODEL = 'none';
export const OTHER_MODEL = 'other';

const SECONDS = 1_000;

export function createProxyMetrics(options: MetricsOptions): ProxyMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  let read: (() => ProxyReadings) | undefined;
  const metrics = instruments(registry, () => read?.());
  const known = new Set(options.models);
  const modelLabel = (model: string | undefined) =>
    model === undefined ? NO_MODEL : known.has(model) ? model : OTHER_MODEL;
  return {
    registry,
    logger: (next) => (line) => {
      if (isRequestLine(line)) record(metrics, line, modelLabel(line.model));
      next(line);
    },
    watch(source) {
      read = source;
    },
  };
}

type Instruments = ReturnType<typeof instruments>;

function instruments(registry: Registry, readings: () => ProxyReadings | undefined) {
  const make = makers(registry);
  return {
    ...requestInstruments(make),
    ...upstreamInstruments(make),
    streams: make.gauge(
      'chat_streams_in_flight',
      'Upstream replies streaming, from their first token to their end (waiting ones are chat_queue_waiting).',
      () => (readings() ?? IDLE).streams,
    ),
    queued: make.gauge(
      'chat_queue_waiting',
      'Requests waiting for upstream capacity.',
      () => (readings() ?? IDLE).queued,
    ),
  };
}

type Makers = ReturnType<typeof makers>;

function makers(registry: Registry) {
  const registers = [registry];
  return {
    seconds: (name: string, help: string, buckets: number[], labelNames: readonly string[] = []) =>
      new Histogram({ name, help, buckets, labelNames, registers }),
    counter: (name: string, help: string, labelNames: readonly string[] = []) =>
      new Counter({ name, help, labelNames, registers }),
    gauge: (name: string, help: string, value: () => number) => {
      const made: Gauge = new Gauge({ name, help, registers, collect: () => made.set(value()) });
      return made;
    },
  };
}

/** How requests went: counts, latencies, tokens and cost. */
function requestInstruments({ counter, seconds }: Makers) {
  return {
    requests: counter('chat_requests_total', 'Requests, by HTTP status, outcome and model.', [
      'status',
      'outcome',
      'model',
    ]),
    errors: counter('chat_errors_total', 'Requests that ended in an error, by error code.', ['code']),
    ttft: seconds(
      'chat_time_to_first_token_seconds',
      'From the request to the first token sent, by model.',
      [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
      ['model'],
    ),
    duration: seconds(
      'chat_request_duration_seconds',
      'From the request to its end (the last token, or the refusal), by model.',
      [0.05, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
      ['model'],
    ),
    tokens: counter('chat_tokens_total', 'Tokens the upstream reported, by model and kind.', [
      'model',
      'kind',
    ]),
    cost: counter('chat_cost_usd_total', 'What the replies cost in USD, by model.', ['model']),
    unpriced: counter('chat_cost_unknown_total', 'Replies whose model has no known price, by model.', [
      'model',
    ]),
    cache: counter('chat_cache_total', 'Response cache lookups, by result.', ['result']),
    coalesced: counter('chat_coalesced_total', 'Requests sharing a reply in flight, by role.', ['role']),
    resumed: counter('chat_resumed_total', 'Replies picked up again by chat id.'),
  };
}

/** What stood between a request and its reply: the limiter, the upstream's failures, the queue. */
function upstreamInstruments({ counter, seconds }: Makers) {
  return {
    refusals: counter('chat_ratelimit_refusals_total', 'Requests refused with a 429, by reason.', ['reason']),
    limiter: counter(
      'chat_ratelimit_store_unavailable_total',
      'Requests decided without the shared limiter store, by what decided.',
      ['decision'],
    ),
    fallbacks: counter('chat_fallbacks_total', 'Replies not from the requested model, by kind.', ['kind']),
    retries: counter(
      'chat_upstream_retries_total',
      'Upstream attempts beyond the first (retries and fallbacks), of replies that started and requests that failed.',
    ),
    queueWait: seconds(
      'chat_queue_wait_seconds',
      'How long requests that waited for upstream capacity waited.',
      [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    ),
  };
}

const IDLE: ProxyReadings = { streams: 0, queued: 0 };

/** One log line, counted. */
function record(m: Instruments, line: RequestLog, model: string): void {
  m.requests.inc({ status: String(line.status), outcome: line.outcome, model });
  m.duration.observe({ model }, line.duration_ms / SECONDS);
  if (line.ttft_ms !== undefined) m.ttft.observe({ model }, line.ttft_ms / SECONDS);
  if (line.error_code) m.errors.inc({ code: boundedCode(line.error_code) });
  if (line.status === 429 && line.error_code) m.refusals.inc({ reason: boundedCode(line.error_code) });
  if (line.usage && madeAttempts(line)) {
    m.tokens.inc({ model, kind: 'input' }, line.usage.prompt_tokens);
    m.tokens.inc({ model, kind: 'output' }, line.usage.completion_tokens);
  }
  if (typeof line.cost_usd === 'number') m.cost.inc({ model }, line.cost_usd);
  else if (line.cost_usd === 'unknown') m.unpriced.inc({ model });
  if (line.fallback) m.fallbacks.inc({ kind: line.fallback });
  if (line.attempts !== undefined && line.attempts > 1 && madeAttempts(line))
    m.retries.inc(line.attempts - 1);
  if (line.ratelimit && line.ratelimit !== 'allowed') m.limiter.inc({ decision: line.ratelimit });
  if (line.cache) m.cache.inc({ result: line.cache });
  if (line.coalesced) m.coalesced.inc({ role: line.coalesced });
  if (line.resumed) m.resumed.inc();
  if (line.queue_wait_ms !== undefined) m.queueWait.observe(line.queue_wait_ms / SECONDS);
}

/**
 * A follower of a coalesced reply and a cache hit log the attempts and usage of the reply they read (or of its
 * failure), but made no upstream call themselves: counted there, each retry and token would count once per reader.
 */
function madeAttempts(line: RequestLog): boolean {
  return line.coalesced !== 'follower' && line.cache !== 'hit';
}

/** Error codes are the proxy's own constants; anything else shaped otherwise is folded, so it cannot grow a label. */
function boundedCode(code: string): string {
  return /^[a-z][a-z0-9_]{0,47}$/.test(code) ? code : 'other';
}
