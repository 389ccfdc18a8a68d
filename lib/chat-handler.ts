import type { Config } from './config';
import { attachmentAllowance } from './config/attachments';
import { errorResponse, toProxyError } from './errors';
import type { CountTokens } from './history/token-count';
import { createAuthenticator } from './http/caller-auth';
import { createCors } from './http/cors';
import { readJsonBody } from './http/read-body';
import { requestIdFrom } from './http/request-id';
import { baseHeaders, methodNotAllowed } from './http/responses';
import { createRequestValidator, type HistoryReport } from './http/validate-request';
import type { Internal } from './internal';
import type { Admission, RateLimitGate } from './limits/gate';
import { worstCaseTokens } from './limits/token-bound';
import { errorFields, type Logger, type RequestContext } from './log';
import { answerFromLog, type Reject, resumeOrStop, streamControl } from './replies/answer';
import type { Replies } from './replies/replies';
import type { ShutdownHooks } from './shutdown';
import { type Produce, type Run, respond } from './stream/respond';
import type { ChatRequest } from './types';
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
}

export type ChatHandler = (req: Request) => Promise<Response>;

/**
 * The whole proxy as one Web-standard function. Read it top to bottom: CORS, caller auth, guard and parse, validate,
 * admit the caller (rate limit and token budget), then answer: from the reply log (a cache hit, a reply already
 * running for the same prompt, or a new one recorded as it streams), or straight from the upstream. Either way the
 * first token is awaited before the status is sent, and the real usage is charged when the reply ends.
 */
export function createChatHandler(deps: ChatHandlerDeps): ChatHandler {
  const { config, gate, log, waitUntil, replies } = deps;
  const { now, newId } = deps.internal;
  const validate = createRequestValidator(config, deps.countTokens);
  const { security } = config;
  const cors = createCors(security, deps.ownOrigins);
  const authenticate = createAuthenticator(security);
  // The reader lets attachments through on top of `MAX_BODY_BYTES`; the validator then holds the text to that cap.
  const bodyLimits = {
    maxBodyBytes: config.caps.maxBodyBytes + attachmentAllowance(config.attachments),
    bodyTimeoutMs: config.caps.bodyTimeoutMs,
  };
  const { safetyIdentifierSecret } = config.models;
  const safetyIdentifier = safetyIdentifierSecret
    ? createSafetyIdentifier(safetyIdentifierSecret)
    : undefined;
  const reject = rejecter(log, now);

  return async (req) => {
    const startedAt = now();
    const requestId = requestIdFrom(req, newId);
    let headers = baseHeaders(requestId);
    let context: RequestContext = { msg: 'chat', request_id: requestId };
    let admission: Admission | undefined;
    try {
      if (req.method === 'OPTIONS') return cors.preflight(req, headers);
      headers = { ...headers, ...cors.check(req) };
      const control = streamControl(req);
      if (control)
        return await resumeOrStop(deps, replies, control, { req, authenticate, context, headers, startedAt });
      if (req.method !== 'POST') throw methodNotAllowed(req.method);
      const callerId = await authenticate(req);
      const { body, bytes } = await readJsonBody(req, bodyLimits);
      const valid = await validate(body, bytes);
      let { request } = valid;
      context = { ...context, model: request.model, ...historyFields(valid.history) };
      headers = { ...headers, ...historyHeaders(valid.history) };
      admission = await gate.admit(req, callerId, worstCaseTokens(request, config.systemPrompt));
      headers = { ...headers, ...admission.headers };
      context = { ...context, ...admissionFields(admission) };
      request = await fromCaller(request, admission.caller.id, safetyIdentifier);
      const moderation: ModerationOutcome['log'] = {};
      const produce = moderatedUpstream(deps, request, moderation);
      const run: Run = {
        req,
        request,
        valid,
        admitted: admission,
        context,
        headers,
        startedAt,
        produce,
        moderation,
      };
      admission = undefined; // from here on, the reply's end settles it
      return replies
        ? await answerFromLog(deps, replies, run, reject)
        : await answerDirectly(deps, run, reject);
    } catch (caught) {
      // No reply was streamed: nothing was generated, so the whole reservation and the stream slot go back.
      if (admission) waitUntil(gate.settle(admission, 0));
      return reject(caught, { context, headers, startedAt });
    }
  };
}

/** Who asked: for the queue's fairness, and (hashed) for the provider's abuse reports (`SAFETY_IDENTIFIER`). */
async function fromCaller(
  request: ChatRequest,
  callerId: string,
  safetyIdentifier: ((callerId: string) => Promise<string>) | undefined,
): Promise<ChatRequest> {
  const hashed = safetyIdentifier && (await safetyIdentifier(callerId));
  return { ...request, callerId, ...(hashed && { safetyIdentifier: hashed }) };
}

/** Ends a request that got no reply: one log line, and its error as the answer. */
function rejecter(log: Logger, now: () => number): Reject {
  return (caught, { context, headers, startedAt }) => {
    const error = toProxyError(caught);
    const duration_ms = now() - startedAt;
    log({ ...context, ...errorFields(error), status: error.status, outcome: 'rejected', duration_ms });
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
  const abort = deps.shutdown.linkedAbort(run.req.signal, { ms: totalTimeoutMs, kind: 'total' });
  try {
    const reply = await run.produce(abort.signal);
    const charge = { produced: Promise.resolve(reply), abort: () => abort.abort(), dispose: abort.dispose };
    return respond(deps, reply, run, charge, {});
  } catch (caught) {
    abort.dispose();
    deps.waitUntil(deps.gate.settle(run.admitted, 0));
    return reject(caught, { ...run, context: { ...run.context, ...run.moderation } });
  }
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
