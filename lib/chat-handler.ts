import type { Config } from './config';
import { attachmentAllowance } from './config/attachments';
import { type Pricing, withSpend } from './cost/pricing';
import { errorResponse, toProxyError } from './errors';
import type { CountTokens } from './history/token-count';
import { createAuthenticator } from './http/caller-auth';
import { createCors } from './http/cors';
import { type BodyReaderOf, readJsonBody } from './http/read-body';
import { requestIdFrom } from './http/request-id';
import { baseHeaders, methodNotAllowed } from './http/responses';
import { createRequestValidator, type HistoryReport } from './http/validate-request';
import type { Internal } from './internal';
import type { Admission, RateLimitGate } from './limits/gate';
import { worstCaseTokens } from './limits/token-bound';
import { errorFields, type Logger, type RequestContext } from './log';
import type { RequestTraces } from './observe/request-traces';
import { answerFromLog, claimAhead, type Reject, resumeOrStop, streamControl } from './replies/answer';
import type { Claimed, Replies } from './replies/replies';
import { countStreaming, type ShutdownHooks } from './shutdown';
import { startWhenReady, watchPlace } from './stream/queued-start';
import type { StreamResponder } from './stream/reply-stream';
import { type Produce, type Run, respond } from './stream/respond';
import { wantsPlainText } from './stream/text-framing';
import type { ChatRequest, QueueTicket } from './types';
import type { Upstream } from './upstream/failover';
import type { ModerationOutcome, ModerationStep } from './upstream/moderation';
import { createSafetyIdentifier } from './upstream/safety-identifier';

export interface ChatHandlerDeps {
  readonly config: Config;
  readonly upstream: Upstream;
  readonly gate: RateLimitGate;
  /** `MODERATION=input`: checks the last user message before the upstream sees it; otherwise passes at once. */
  readonly moderate: ModerationStep;
  /** Keeps work alive after the response has ended (Vercel's `waitUntil`); on a server, the promise just runs. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly log: Logger;
  readonly internal: Internal;
  /** Links each reply's abort to a server drain (lib/shutdown.ts), which cuts what is still open at its deadline. */
  readonly shutdown: ShutdownHooks;
  /** The platform's own page origins, besides `PUBLIC_URL` (see `Platform.ownOrigins`); read on every request. */
  readonly ownOrigins: readonly string[];
  /** The token counter for the history caps: a real tokenizer where the platform has one, else the estimate. */
  readonly countTokens?: () => Promise<CountTokens>;
  /** The reply log (cache, coalescing, resume); absent when all three are off: replies then stream straight through. */
  readonly replies?: Replies;
  /** One OpenTelemetry span per request, when an SDK records them (lib/observe/request-traces.ts). */
  readonly traces?: RequestTraces;
  /** Model prices: what a reply cost, and what a spend budget reserves (lib/cost). */
  readonly pricing: Pricing;
  /** How the platform answers with a streamed reply (`Platform.streamResponse`); a Web stream by default. */
  readonly streamResponse?: StreamResponder;
  /** The platform's body reader (`Platform.bodyReader`); `req.body` by default. */
  readonly bodyReader?: BodyReaderOf;
  /** The platform's signal for a client that left (`Platform.clientSignal`); `req.signal` by default. */
  readonly clientSignal?: (req: Request) => AbortSignal;
}

export type ChatHandler = (req: Request) => Promise<Response>;

/**
 * The whole proxy as one Web-standard function. Read it top to bottom: CORS, caller auth, guard and parse, validate,
 * admit the caller (rate limit and token budget), then answer: from the reply log (a cache hit, a reply already
 * running for the same prompt, or a new one recorded as it streams), or straight from the upstream. Either way the
 * first token is awaited before the status is sent, and the real usage is charged when the reply ends.
 */
export function createChatHandler(deps: ChatHandlerDeps): ChatHandler {
  const { config, gate, waitUntil, replies } = deps;
  const { now, newId } = deps.internal;
  const { validate, cors, authenticate, bodyLimits, safetyIdentifier, reject, clientSignal } = stages(deps);

  return async (req) => {
    const startedAt = now();
    const requestId = requestIdFrom(req, newId);
    const headers = baseHeaders(requestId);
    const context: RequestContext = { msg: 'chat', request_id: requestId };
    let admission: Admission | undefined;
    let claimed: Promise<Claimed> | undefined;
    try {
      if (req.method === 'OPTIONS') return cors.preflight(req, headers);
      const trace = deps.traces?.start(req, requestId); // ended by this request's log line
      // Merged in place: see `Object.assign` in lib/stream/respond.ts.
      Object.assign(headers, cors.check(req));
      // What every answer needs; the client's signal is the platform's own where it has one (`clientSignal`).
      const asked = { req, signal: clientSignal(req), context, headers, startedAt };
      const control = streamControl(req);
      if (control) return await resumeOrStop(deps, replies, control, { ...asked, authenticate });
      if (req.method !== 'POST') throw methodNotAllowed(req.method);
      const verified = await authenticate(req);
      const { body, bytes } = await readJsonBody(req, bodyLimits, deps.bodyReader);
      const valid = await validate(body, bytes);
      let { request } = valid;
      Object.assign(context, { model: request.model }, historyFields(valid.history));
      Object.assign(headers, historyHeaders(valid.history));
      const worstCase = worstCaseTokens(request, config.operatorTokens);
      // The reply log's claim is a round trip to Redis too: it goes with the admission's, and is given up on a refusal.
      claimed = claimAhead(deps, req, asked.signal, valid, verified?.id);
      admission = await gate.admit(req, verified?.id, withSpend(deps.pricing, request, worstCase));
      Object.assign(headers, admission.headers);
      Object.assign(context, admissionFields(admission));
      const { ticket, place, queued } = inLine(req, admission.caller.id, verified?.priority ?? 0, worstCase);
      request = await fromCaller(request, ticket, safetyIdentifier);
      if (trace) request = { ...request, trace }; // the parent of its upstream spans
      const moderation: ModerationOutcome['log'] = {};
      const produce = moderatedUpstream(deps, request, moderation);
      const run: Run = Object.assign(asked, {
        queued,
        request,
        valid,
        admitted: admission,
        produce,
        moderation,
        place,
      });
      admission = undefined; // from here on, the reply's end settles it
      return replies
        ? await answerFromLog(deps, replies, run, reject, claimed)
        : await answerDirectly(deps, run, reject);
    } catch (caught) {
      // No reply was streamed: nothing was generated, so the whole reservation and the stream slot go back.
      if (admission) waitUntil(gate.settle(admission, 0));
      // Its claim, if it was refused (or failed) before its reply started: given up, so others need not wait on it.
      claimed?.then(abandon, () => {});
      return reject(caught, { context, headers, startedAt });
    }
  };
}

const abandon = (claim: Claimed) => claim.abandon();

/** The request path's stages, built once from the config. */
function stages(deps: ChatHandlerDeps) {
  const { config } = deps;
  const { safetyIdentifierSecret } = config.models;
  return {
    validate: createRequestValidator(config, deps.countTokens),
    cors: createCors(config.security, deps.ownOrigins),
    authenticate: createAuthenticator(config.security, config.queue.priorityClaim),
    // The reader lets attachments through on top of `MAX_BODY_BYTES`; the validator then holds the text to that cap.
    bodyLimits: {
      maxBodyBytes: config.caps.maxBodyBytes + attachmentAllowance(config.attachments),
      bodyTimeoutMs: config.caps.bodyTimeoutMs,
    },
    safetyIdentifier: safetyIdentifierSecret ? createSafetyIdentifier(safetyIdentifierSecret) : undefined,
    reject: rejecter(deps.log, deps.internal.now),
    clientSignal: deps.clientSignal ?? ((req: Request) => req.signal),
  };
}

/**
 * How the request waits for upstream capacity: its ticket (whose it is, how urgent, its worst case in tokens), the
 * watch that tells a UI client its place, and the record its log line reads the wait from.
 */
function inLine(req: Request, callerId: string, priority: number, tokens: number) {
  const place = watchPlace(req, wantsPlainText(req) ? 'text' : 'ui');
  const queued: Run['queued'] = {};
  const onWaited = (ms: number) => Object.assign(queued, { queue_wait_ms: ms });
  const ticket: QueueTicket = { callerId, priority, tokens, onPlace: place?.onPlace, onWaited };
  return { ticket, place, queued };
}

/** Who asked: for the queue (fairness, priority), and (hashed) for the provider's abuse reports (`SAFETY_IDENTIFIER`). */
async function fromCaller(
  request: ChatRequest,
  ticket: QueueTicket,
  safetyIdentifier: ((callerId: string) => Promise<string>) | undefined,
): Promise<ChatRequest> {
  const hashed = safetyIdentifier && (await safetyIdentifier(ticket.callerId));
  // Not a spread: see lib/stream/respond.ts.
  return Object.assign({}, request, { ticket }, hashed && { safetyIdentifier: hashed });
}

/**
 * Ends a request that got no reply: one log line, and its error as the answer. `inStream`: its UI stream had
 * already started (it was told its place in line), so the client hears the error inside a 200.
 */
function rejecter(log: Logger, now: () => number): Reject {
  return (caught, { context, headers, startedAt }, inStream = false) => {
    const error = toProxyError(caught);
    const duration_ms = now() - startedAt;
    // In a started stream, a client that left is a cancelled stream, as it is once tokens flow.
    const left = error.code === 'client_closed_request';
    const ended = inStream
      ? ({ status: 200, outcome: left ? 'cancelled' : 'error' } as const)
      : ({ status: error.status, outcome: 'rejected' } as const);
    log(Object.assign({}, context, errorFields(error), ended, { duration_ms }));
    return errorResponse(error, headers);
  };
}

/** Moderation first (`MODERATION=input`), then the upstream: how a request produces its own reply. */
function moderatedUpstream(
  deps: ChatHandlerDeps,
  request: ChatRequest,
  fields: ModerationOutcome['log'],
): Produce {
  return async (signal) => {
    const moderation = await deps.moderate(request, signal);
    Object.assign(fields, moderation.log);
    if (moderation.refusal) throw moderation.refusal;
    return deps.upstream.open(request, signal);
  };
}

/** With no reply log: the upstream streams straight to this one client, and stops when it leaves. */
async function answerDirectly(deps: ChatHandlerDeps, run: Run, reject: Reject): Promise<Response> {
  // The total timeout covers the whole reply; retries and the first-token deadline live in the upstream.
  const { totalTimeoutMs } = deps.config.failover;
  const abort = deps.shutdown.linkedAbort(run.signal, { ms: totalTimeoutMs, kind: 'total' });
  return startWhenReady(
    countStreaming(abort, run.produce(abort.signal)),
    run.place,
    {
      ready: (reply) => {
        const charge = {
          produced: Promise.resolve(reply),
          abort: () => abort.abort(),
          dispose: abort.dispose,
        };
        return respond(deps, reply, run, charge, {});
      },
      failed: (caught, inStream) => {
        abort.dispose();
        deps.waitUntil(deps.gate.settle(run.admitted, 0));
        return reject(
          caught,
          { ...run, context: { ...run.context, ...run.moderation, ...run.queued } },
          inStream,
        );
      },
    },
    run.headers,
    deps.streamResponse,
  );
}

function admissionFields(admission: Admission): Partial<RequestContext> {
  return {
    caller: admission.caller.id,
    ratelimit: admission.decision,
    ...(admission.detail ? { ratelimit_error: admission.detail } : {}),
  };
}

/** What was left out of the conversation: for the log, and (the trimming) for the client. */
function historyFields({ droppedParts, trimmed }: HistoryReport): Partial<RequestContext> {
  return { ...(droppedParts ? { dropped_parts: droppedParts } : {}), ...(trimmed ? { trimmed } : {}) };
}

function historyHeaders({ trimmed }: HistoryReport): Record<string, string> {
  return trimmed ? { 'x-chat-trimmed': String(trimmed) } : {};
}
