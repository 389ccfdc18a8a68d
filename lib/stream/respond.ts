import type { Config } from '../config';
import type { Pricing } from '../cost/pricing';
import { amountUsed, costFields, costOfReply } from '../cost/reply-cost';
import type { ValidRequest } from '../http/validate-request';
import type { Internal } from '../internal';
import type { Admission, RateLimitGate } from '../limits/gate';
import { errorFields, type Logger, type RequestContext, usageFields } from '../log';
import type { ChatRequest } from '../types';
import type { ServedReply } from '../upstream/failover';
import type { ModerationOutcome } from '../upstream/moderation';
import type { PlaceWatch } from './queued-start';
import { ReplyBody, type StreamEnd, type StreamedReply, type StreamResponder } from './reply-stream';
import { textFraming, textStreamHeaders, wantsPlainText } from './text-framing';
import { uiFraming, uiStreamHeaders } from './ui-framing';

export interface RespondDeps {
  readonly config: Config;
  readonly gate: RateLimitGate;
  readonly log: Logger;
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly internal: Internal;
  /** Model prices: the cost in the log line and the finish metadata, and what the spend budgets settle to. */
  readonly pricing: Pricing;
  /** How the platform answers with a streamed reply (`Platform.streamResponse`); a Web stream by default. */
  readonly streamResponse?: StreamResponder;
}

/** Moderation, then the upstream (retries and fallbacks inside): what produces a reply. */
export type Produce = (signal: AbortSignal) => Promise<ServedReply>;

/** One admitted request on its way to a reply: what the reply's end needs to settle and log it. */
export interface Run {
  readonly req: Request;
  /** Aborts when the client leaves (`Platform.clientSignal`, else `req.signal`). */
  readonly signal: AbortSignal;
  readonly request: ChatRequest;
  readonly valid: ValidRequest;
  readonly admitted: Admission;
  readonly context: RequestContext;
  readonly headers: Record<string, string>;
  readonly startedAt: number;
  readonly produce: Produce;
  /** Filled in by `produce`: what moderation said, for the log line. */
  readonly moderation: ModerationOutcome['log'];
  /** For a UI client that asked to hear its place in line while it waits for capacity. */
  readonly place: PlaceWatch | undefined;
  /** Filled in by the queue when the request had to wait: how long, for the log line. */
  readonly queued: Pick<RequestContext, 'queue_wait_ms'>;
}

/** Who pays for a reply and how to stop it: the upstream reply this request produced (none: it costs nothing). */
export interface Charge {
  readonly produced: Promise<ServedReply | undefined>;
  /** The client left: stop reading (and, for a lone request, stop the upstream). */
  readonly abort: () => void;
  readonly dispose: () => void;
}

/** What this way of answering adds: log fields, headers, and the message id to frame the reply under. */
export interface Extra {
  readonly context?: Partial<RequestContext>;
  readonly headers?: Record<string, string>;
  readonly messageId?: string;
}

/** The reply is under way (its first token is in): stream it in the asked-for protocol, settle and log at its end. */
export function respond(
  deps: RespondDeps,
  reply: ServedReply,
  run: Run,
  charge: Charge,
  extra: Extra,
): StreamedReply {
  const { config, gate, log, waitUntil, pricing } = deps;
  const { now, newId } = deps.internal;
  const { req, request, admitted, startedAt } = run;
  const protocol: 'text' | 'ui' = wantsPlainText(req) ? 'text' : 'ui';
  const ttft_ms = now() - startedAt;
  // `Object.assign`, not `{ ...a, ...b }`, for the request path's larger objects (log fields, headers): on Node 20
  // (V8 11), a spread that builds more than a few properties takes a slow path, 8-25 µs for 15-20 keys against
  // about 1 µs (Node 24: both under 1 µs).
  const context: RequestContext = Object.assign(
    {},
    run.context,
    run.moderation,
    run.queued,
    extra.context,
    servedFields(reply),
    { protocol, ttft_ms },
  );
  const onEnd = (end: StreamEnd) => {
    charge.dispose();
    const ended = Object.assign({}, context, streamEndFields(end), { duration_ms: now() - startedAt });
    // Abandoned streams are charged too: tokens generated before the abort were paid for. A leader is charged when
    // its upstream reply ends, which may be after its own client left (others were still reading).
    const logged = charge.produced.then(async (produced) => {
      const used = produced ? amountUsed(produced, request, pricing, config.operatorTokens) : 0;
      const budget_error = await gate.settle(admitted, used);
      const usage = usageFields((produced ?? reply).outcome.usage);
      const cost = costFields(pricing, produced, request, config.operatorTokens);
      log(Object.assign(ended, usage, cost, budget_error && { budget_error }));
    });
    waitUntil(logged);
  };
  const hooks = { abort: charge.abort, onEnd };
  const headers = Object.assign({}, run.headers, extra.headers, servedHeaders(reply));
  if (protocol === 'text') {
    const body = new ReplyBody(reply, textFraming(config.models.reasoningInText), hooks);
    return { body, headers: textStreamHeaders(headers) };
  }
  const messageId = extra.messageId ?? request.messageId ?? newId();
  const { model } = reply.served;
  const costOf = costOfReply(pricing, model);
  const framing = uiFraming({ messageId, model, trimmed: run.valid.history.trimmed, costOf });
  return { body: new ReplyBody(reply, framing, hooks), headers: uiStreamHeaders(headers) };
}

/** Which model answered, and whether it was a fallback: a response header the client can act on. */
export function servedHeaders(reply: ServedReply): Record<string, string> {
  const { model, fallback } = reply.served;
  return {
    ...(model ? { 'x-chat-model': model } : {}),
    ...(fallback === 'none' ? {} : { 'x-chat-fallback': fallback }),
  };
}

function servedFields(reply: ServedReply): Partial<RequestContext> {
  const { model, attempts, fallback } = reply.served;
  const adapted = reply.adapted?.join(', ');
  // Not spreads around a property, which Node 20 builds on a slow path (see `Object.assign` above).
  const fields: Partial<RequestContext> = model ? { model, attempts } : { attempts };
  if (fallback !== 'none') Object.assign(fields, { fallback });
  if (adapted) Object.assign(fields, { adapted });
  return fields;
}

/** The status was 200 once streaming began; the outcome says how the stream itself ended. */
function streamEndFields(end: StreamEnd) {
  if (end.kind === 'error') return { ...errorFields(end.error), status: 200, outcome: 'error' } as const;
  return { level: 'info', status: 200, outcome: end.kind } as const;
}
