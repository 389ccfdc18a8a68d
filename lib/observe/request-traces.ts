import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { isRequestLine, type Logger, type RequestLog } from '../log';
import { CHAT_OPERATION, tracer } from './spans';

/**
 * One span per request, from the moment the handler takes it to its one log line. Its context is handed down
 * explicitly (no AsyncLocalStorage, which the edge does not promise): the limiter's span finds it by the `Request`,
 * the upstream's by `ChatRequest.trace`.
 */
export interface RequestTraces {
  /**
   * Starts the request's span, as a child of the caller's `traceparent` when a propagator is registered. Returns
   * its context, or `undefined` when nothing records (no SDK, or sampled out): then no child span is started either.
   */
  start(req: Request, requestId: string): Context | undefined;
  /** The context `start` made for this request, if any. */
  of(req: Request): Context | undefined;
  /** Ends each request's span with what its log line says, then passes the line on unchanged. */
  logger(next: Logger): Logger;
}

const HEADERS_GETTER = {
  keys: (headers: Headers) => [...headers.keys()],
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
};

/** `rootTracer`: where request spans start, looked up once per proxy (child spans look theirs up when they record). */
export function createRequestTraces(rootTracer: Tracer = tracer()): RequestTraces {
  const contexts = new WeakMap<Request, Context>();
  // By request id, since the log line is all the logger sees. Ids are the caller's `x-request-id` when sane, so two
  // requests in flight may share one: each id holds a list, ended in order.
  const open = new Map<string, Span[]>();

  const take = (requestId: string): Span | undefined => {
    const spans = open.get(requestId);
    const span = spans?.shift();
    if (spans?.length === 0) open.delete(requestId);
    return span;
  };

  return {
    start(req, requestId) {
      const parent = propagation.extract(context.active(), req.headers, HEADERS_GETTER);
      // Named in full only once it records: with no SDK, a request costs this one no-op span and nothing more.
      const span = rootTracer.startSpan(req.method, { kind: SpanKind.SERVER }, parent);
      if (!span.isRecording()) return undefined;
      const httpRoute = route(req.url);
      span.updateName(`${req.method} ${httpRoute}`);
      span.setAttributes({
        ...CHAT_OPERATION,
        'http.request.method': req.method,
        'http.route': httpRoute,
        request_id: requestId,
      });
      const spans = open.get(requestId);
      if (spans) spans.push(span);
      else open.set(requestId, [span]);
      if (open.size > MAX_OPEN) dropOldest(open);
      const spanContext = trace.setSpan(parent, span);
      contexts.set(req, spanContext);
      return spanContext;
    },
    of: (req) => contexts.get(req),
    logger: (next) => (line) => {
      if (open.size > 0 && isRequestLine(line)) {
        const span = take(line.request_id);
        if (span) endWith(span, line);
      }
      next(line);
    },
  };
}

/**
 * Every request logs exactly one line, so spans never pile up here; should a path ever forget to, this bound keeps
 * the cost to memory flat, and the oldest span is ended as `unlogged`, where a trace viewer shows the bug.
 */
const MAX_OPEN = 100_000;

function dropOldest(open: Map<string, Span[]>): void {
  const [requestId, spans] = open.entries().next().value ?? [];
  if (requestId === undefined) return;
  open.delete(requestId);
  for (const span of spans ?? []) {
    span.setAttribute('outcome', 'unlogged');
    span.end();
  }
}

/** `http.route`: the chat, or the resume/stop route with its chat id left out (ids do not belong in a route). */
function route(url: string): string {
  return new URL(url).pathname.endsWith('/stream') ? '/api/chat/{chatId}/stream' : '/api/chat';
}

function endWith(span: Span, line: RequestLog): void {
  span.setAttributes(lineAttributes(line));
  // The log's own judgement: `error` is what an operator must act on (an outage), not a refusal or a departure.
  if (line.level === 'error') span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/**
 * The log line's fields as span attributes: the GenAI conventions where they have a name, ours otherwise. Never the
 * caller id (an IP or a user), `error_detail` (it may quote the upstream) or anything of the conversation.
 */
function lineAttributes(line: RequestLog): Attributes {
  const served = line.status === 200;
  return {
    'http.response.status_code': line.status,
    outcome: line.outcome,
    ...(line.model && { [served ? 'gen_ai.response.model' : 'gen_ai.request.model']: line.model }),
    ...(line.usage && {
      'gen_ai.usage.input_tokens': line.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': line.usage.completion_tokens,
    }),
    ...(line.error_code && { 'error.type': line.error_code }),
    ...(line.ttft_ms !== undefined && { ttft_ms: line.ttft_ms }),
    ...(line.attempts !== undefined && { attempts: line.attempts }),
    ...(line.fallback && { fallback: line.fallback }),
    ...(line.ratelimit && { ratelimit: line.ratelimit }),
    ...(line.coalesced && { coalesced: line.coalesced }),
    ...(line.cache && { cache: line.cache }),
    ...(line.resumed && { resumed: true }),
    ...(typeof line.cost_usd === 'number' && { cost_usd: line.cost_usd }),
    ...(line.queue_wait_ms !== undefined && { queue_wait_ms: line.queue_wait_ms }),
    duration_ms: line.duration_ms,
  };
}
