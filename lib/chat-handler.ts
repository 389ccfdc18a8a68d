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
import { errorFields, type Logger, type RequestContext, usageFields } from './log';
import { textOf } from './parts/content';
import type { ShutdownHooks } from './shutdown';
import { replyStream, type StreamEnd } from './stream/reply-stream';
import { textFraming, textStreamResponse, wantsPlainText } from './stream/text-framing';
import { uiFraming, uiStreamResponse } from './stream/ui-framing';
import type { ChatRequest } from './types';
import type { LinkedAbort } from './upstream/abort';
import type { ServedReply, Upstream } from './upstream/failover';
import type { ModerationStep } from './upstream/moderation';
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
}

export type ChatHandler = (req: Request) => Promise<Response>;

/** One request on its way to being streamed: what the reply's end needs to settle and log it. */
interface Run {
  readonly req: Request;
  readonly request: ChatRequest;
  readonly abort: LinkedAbort;
  readonly admitted: Admission;
  readonly context: RequestContext;
  readonly headers: Record<string, string>;
  readonly startedAt: number;
  /** Oldest messages left out to fit the caps: the UI stream tells the app. */
  readonly trimmed: number;
}

/**
 * The whole proxy as one Web-standard function. Read it top to bottom: CORS, caller auth, guard and parse, validate,
 * admit the caller (rate limit and token budget), open the upstream and wait for the first token (so a failure still
 * gets a real status), then stream the rest in the asked-for protocol and charge the real usage when it ends.
 */
export function createChatHandler(deps: ChatHandlerDeps): ChatHandler {
  const { config, upstream, gate, log, waitUntil } = deps;
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

  return async (req) => {
    const startedAt = now();
    const requestId = requestIdFrom(req, newId);
    let headers = baseHeaders(requestId);
    let context: RequestContext = { msg: 'chat', request_id: requestId };
    let admission: Admission | undefined;
    try {
      if (req.method === 'OPTIONS') return cors.preflight(req, headers);
      headers = { ...headers, ...cors.check(req) };
      if (req.method !== 'POST') throw methodNotAllowed(req.method);
      const callerId = await authenticate(req);
      const { body, bytes } = await readJsonBody(req, bodyLimits);
      const { request: valid, history } = await validate(body, bytes);
      let request = valid;
      context = { ...context, model: request.model, ...historyFields(history) };
      headers = { ...headers, ...historyHeaders(history) };
      admission = await gate.admit(req, callerId, worstCaseTokens(request, config.systemPrompt));
      headers = { ...headers, ...admission.headers };
      context = { ...context, ...admissionFields(admission) };
      if (safetyIdentifier)
        request = { ...request, safetyIdentifier: await safetyIdentifier(admission.caller.id) };
      const moderation = await deps.moderate(request, req.signal);
      context = { ...context, ...moderation.log };
      if (moderation.refusal) throw moderation.refusal;

      // The total timeout covers the whole reply; retries and the first-token deadline live in the upstream.
      const abort = deps.shutdown.linkedAbort(req.signal, {
        ms: config.failover.totalTimeoutMs,
        kind: 'total',
      });
      const reply = await upstream.open(request, abort.signal).catch((error: unknown) => {
        abort.dispose();
        throw error;
      });
      const admitted = admission;
      admission = undefined; // from here on, the stream's end settles it
      const { trimmed } = history;
      return respond(deps, reply, { req, request, abort, admitted, context, headers, startedAt, trimmed });
    } catch (caught) {
      const error = toProxyError(caught);
      // No reply was streamed: nothing was generated, so the whole reservation and the stream slot go back.
      if (admission) waitUntil(gate.settle(admission, 0));
      const duration_ms = now() - startedAt;
      log({ ...context, ...errorFields(error), status: error.status, outcome: 'rejected', duration_ms });
      return errorResponse(error, headers);
    }
  };
}

/** The reply is under way (its first token is in): stream it in the asked-for protocol, settle and log at its end. */
function respond(deps: ChatHandlerDeps, reply: ServedReply, run: Run): Response {
  const { config, gate, log, waitUntil } = deps;
  const { now, newId } = deps.internal;
  const { req, request, abort, admitted, startedAt } = run;
  const protocol = wantsPlainText(req) ? 'text' : 'ui';
  const context = { ...run.context, ...servedFields(reply), protocol, ttft_ms: now() - startedAt } as const;
  const onEnd = (end: StreamEnd) => {
    abort.dispose();
    const ended = { ...context, ...streamEndFields(end), duration_ms: now() - startedAt };
    // Abandoned streams are charged too: tokens generated before the abort were paid for.
    const settled = gate.settle(admitted, tokensUsed(reply, request));
    const usage = usageFields(reply.outcome.usage);
    waitUntil(
      settled.then((budget_error) => log({ ...ended, ...usage, ...(budget_error && { budget_error }) })),
    );
  };
  const hooks = { abort: () => abort.abort(), onEnd };
  const headers = { ...run.headers, ...servedHeaders(reply) };
  if (protocol === 'text') {
    return textStreamResponse(replyStream(reply, textFraming(config.models.reasoningInText), hooks), headers);
  }
  const messageId = request.messageId ?? newId();
  const framing = uiFraming({ messageId, model: reply.served.model, trimmed: run.trimmed });
  return uiStreamResponse(replyStream(reply, framing, hooks), headers);
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

/** Which model answered, and whether it was a fallback: a response header the client can act on. */
function servedHeaders(reply: ServedReply): Record<string, string> {
  const { model, fallback } = reply.served;
  return {
    ...(model ? { 'x-chat-model': model } : {}),
    ...(fallback === 'none' ? {} : { 'x-chat-fallback': fallback }),
  };
}

function servedFields(reply: ServedReply): Partial<RequestContext> {
  const { model, attempts, fallback } = reply.served;
  const adapted = reply.adapted?.join(', ');
  return {
    ...(model ? { model } : {}),
    attempts,
    ...(fallback === 'none' ? {} : { fallback }),
    ...(adapted && { adapted }),
  };
}

/**
 * What the upstream reported, or, for a stream cut short before its usage chunk, an estimate of what was generated.
 * The operator's fallback message costs nothing, so it is not charged.
 */
function tokensUsed(reply: ServedReply, request: ChatRequest): number {
  if (reply.served.fallback === 'message') return 0;
  if (reply.outcome.usage) return reply.outcome.usage.totalTokens;
  const promptChars = request.messages.reduce((n, m) => n + textOf(m).length, 0);
  return Math.ceil(promptChars / 4) + reply.outcome.deltas;
}

/** The status was 200 once streaming began; the outcome says how the stream itself ended. */
function streamEndFields(end: StreamEnd) {
  if (end.kind === 'error') return { ...errorFields(end.error), status: 200, outcome: 'error' } as const;
  return { level: 'info', status: 200, outcome: end.kind } as const;
}
