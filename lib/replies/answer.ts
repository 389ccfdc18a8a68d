import { amountUsed, costOfReply } from '../cost/reply-cost';
import { ProxyError } from '../errors';
import type { Authenticate } from '../http/caller-auth';
import { CHAT_ID, type ValidRequest } from '../http/validate-request';
import type { RequestContext } from '../log';
import { startWhenReady } from '../stream/queued-start';
import { ReplyBody, streamedResponse } from '../stream/reply-stream';
import { type Charge, type RespondDeps, type Run, respond, servedHeaders } from '../stream/respond';
import { uiFraming, uiStreamHeaders } from '../stream/ui-framing';
import { isLeaderLost } from './events';
import type { Claimed, Joined, Replies, ServeOptions } from './replies';

/** Ends a request that got no reply: logs it and answers with its error. */
export type Reject = (
  caught: unknown,
  run: { context: RequestContext; headers: Record<string, string>; startedAt: number },
  inStream?: boolean,
) => Response;

/**
 * Claims the request's reply before it is admitted, so that the claim and the admission share a round trip to Redis.
 * Undefined (claimed after the admission) without a reply log, or for a caller the limiter refused lately.
 */
export function claimAhead(
  deps: Pick<RespondDeps, 'gate' | 'internal'> & { readonly replies?: Replies | undefined },
  req: Request,
  signal: AbortSignal,
  valid: ValidRequest,
  verifiedCallerId: string | undefined,
): Promise<Claimed> | undefined {
  if (!deps.replies) return undefined;
  const callerId = deps.gate.ahead(req, verifiedCallerId);
  if (callerId === undefined) return undefined;
  const claimed = deps.replies.claim(valid.request, serveOptions(deps, req, signal, valid, callerId));
  claimed.catch(() => {}); // awaited once admitted; a refusal gives it up
  return claimed;
}

function serveOptions(
  deps: Pick<RespondDeps, 'internal'>,
  req: Request,
  signal: AbortSignal,
  valid: ValidRequest,
  callerId: string,
): ServeOptions {
  return {
    callerId,
    messageId: valid.request.messageId ?? deps.internal.newId(),
    signal,
    cacheControl: valid.regenerate ? 'no-cache' : cacheControlOf(req),
    storable: valid.history.trimmed === 0,
    chatId: valid.chatId,
  };
}

/**
 * Answers from the reply log: as the leader (the reply is produced here and recorded), a follower (an identical one
 * is already running: read it) or a cache hit (replay it). A follower or a hit costs no tokens; the leader pays for
 * the whole reply, even if its own client leaves before the others. `claimed`: the claim made alongside the
 * admission, if there was one.
 */
export async function answerFromLog(
  deps: RespondDeps,
  replies: Replies,
  run: Run,
  reject: Reject,
  claimed?: Promise<Claimed>,
  takeover = true,
): Promise<Response> {
  const { req, request, valid } = run;
  const claim = await (claimed ??
    replies.claim(valid.request, serveOptions(deps, req, run.signal, valid, run.admitted.caller.id)));
  const joined = claim.start(run.produce);
  const produced = joined.produced ?? Promise.resolve(undefined);
  const extra = {
    context: joinedFields(joined, deps.config.replies),
    headers: joinedHeaders(joined, deps.config.replies.coalesce),
    ...(joined.messageId !== undefined && { messageId: joined.messageId }),
  };
  const headers = Object.assign({}, run.headers, extra.headers); // not a spread: see lib/stream/respond.ts
  const first = joined.first.then(({ reply }) => reply);
  return startWhenReady(
    first,
    run.place,
    {
      ready: (reply) => {
        const charge: Charge = { produced, abort: joined.leave, dispose: joined.leave };
        return respond(deps, reply, run, charge, extra);
      },
      failed: (caught, inStream) => {
        joined.leave();
        // Its leader vanished before its first token, and nothing reached this client: claim again, once, and lead.
        if (takeover && !inStream && isLeaderLost(caught) && !run.signal.aborted) {
          const context = { ...run.context, took_over: true };
          return answerFromLog(deps, replies, { ...run, context }, reject, undefined, false);
        }
        // A leader whose client left before the first token still pays for what the others go on to read.
        const charged = produced.then((reply) =>
          deps.gate.settle(
            run.admitted,
            reply ? amountUsed(reply, request, deps.pricing, deps.config.operatorTokens) : 0,
          ),
        );
        deps.waitUntil(charged);
        const context = { ...run.context, ...run.moderation, ...run.queued, ...extra.context };
        return reject(caught, { context, headers, startedAt: run.startedAt }, inStream);
      },
    },
    headers,
    deps.streamResponse,
  );
}

/** `Cache-Control: no-cache` asks for a fresh reply (which may be stored); `no-store` for one that is not kept. */
function cacheControlOf(req: Request): ServeOptions['cacheControl'] {
  const header = req.headers.get('cache-control')?.toLowerCase() ?? '';
  if (/\bno-store\b/.test(header)) return 'no-store';
  return /\bno-cache\b/.test(header) ? 'no-cache' : 'use';
}

function joinedFields(
  joined: Joined,
  config: { cacheTtlMs: number; coalesce: boolean },
): Partial<RequestContext> {
  const role = joined.role === 'hit' ? undefined : joined.role;
  return {
    ...(config.coalesce && role && { coalesced: role }),
    ...(config.cacheTtlMs > 0 && {
      cache: joined.cache === 'HIT' ? 'hit' : joined.cache === 'MISS' ? 'miss' : 'bypass',
    }),
    ...(joined.detail && { reply_log_error: joined.detail }),
  };
}

function joinedHeaders(joined: Joined, coalesce: boolean): Record<string, string> {
  const role = joined.role === 'hit' ? undefined : joined.role;
  return { 'x-cache': joined.cache, ...(coalesce && role && { 'x-coalesced': role }) };
}

/** `GET` or `DELETE /api/chat/{chatId}/stream`: useChat's resume, and the page's stop. */
export interface StreamControl {
  readonly chatId: string;
  readonly method: string;
}

export function streamControl(req: Request): StreamControl | undefined {
  // Every chat request passes here: a substring test spares it parsing its URL.
  if (!req.url.includes('/stream')) return undefined;
  const match = /\/chat\/([^/]+)\/stream\/?$/.exec(new URL(req.url).pathname);
  if (!match?.[1]) return undefined;
  // A malformed escape is just an id that cannot exist (a 404 later), not a server error.
  let chatId = '';
  try {
    chatId = decodeURIComponent(match[1]);
  } catch {}
  return { chatId, method: req.method };
}

export interface ControlContext {
  readonly req: Request;
  /** Aborts when the client leaves (`Platform.clientSignal`, else `req.signal`). */
  readonly signal: AbortSignal;
  readonly authenticate: Authenticate;
  readonly context: RequestContext;
  readonly headers: Record<string, string>;
  readonly startedAt: number;
}

/**
 * Resume (`GET`) or stop (`DELETE`) a chat's running reply. Each goes through the rate limit like any request (no
 * tokens: reading a reply costs nothing upstream), which also tells who the caller is: a chat id is not a capability,
 * so another caller's chat is a 404, exactly as if it did not exist.
 */
export async function resumeOrStop(
  deps: RespondDeps,
  replies: Replies | undefined,
  control: StreamControl,
  ctx: ControlContext,
): Promise<Response> {
  const { req } = ctx;
  if (control.method !== 'GET' && control.method !== 'DELETE') {
    throw new ProxyError(
      405,
      'method_not_allowed',
      `Method ${control.method} is not allowed. Use GET or DELETE.`,
      {
        headers: { allow: 'GET, DELETE' },
      },
    );
  }
  if (!CHAT_ID.test(control.chatId)) throw notFound();
  // No reply log (cache, coalescing and resume all off): nothing is ever running under a chat id.
  if (!replies) return nothingRunning(deps, control, ctx);
  const admission = await deps.gate.admit(req, (await ctx.authenticate(req))?.id, 0);
  const headers = { ...ctx.headers, ...admission.headers };
  const context: RequestContext = { ...ctx.context, caller: admission.caller.id, resumed: true };
  let settled = false;
  const settle = () => {
    if (settled) return Promise.resolve(undefined);
    settled = true;
    return deps.gate.settle(admission, 0);
  };
  const finish = (status: number) => {
    deps.waitUntil(settle());
    deps.log({
      ...context,
      level: 'info',
      status,
      outcome: 'complete',
      duration_ms: deps.internal.now() - ctx.startedAt,
    });
  };
  try {
    if (control.method === 'DELETE') {
      const result = await replies.stop(control.chatId, admission.caller.id);
      if (result === 'not_found') throw notFound();
      finish(200);
      return Response.json({ stopped: result === 'stopped' }, { headers });
    }
    const resumed = await replies.resume(control.chatId, admission.caller.id, ctx.signal);
    if (resumed.kind === 'not_found') throw notFound();
    if (resumed.kind === 'none') {
      finish(204);
      return new Response(null, { status: 204, headers });
    }
    const { reply, head } = await resumed.first.catch((error: unknown) => {
      resumed.leave();
      throw error;
    });
    const onEnd = () => {
      resumed.leave();
      finish(200);
    };
    const { model } = reply.served;
    const framing = uiFraming({ messageId: head.messageId, model, costOf: costOfReply(deps.pricing, model) });
    const body = new ReplyBody(reply, framing, { abort: resumed.leave, onEnd });
    const streamed = { body, headers: uiStreamHeaders({ ...headers, ...servedHeaders(reply) }) };
    return streamedResponse(streamed, deps.streamResponse);
  } catch (error) {
    deps.waitUntil(settle());
    throw error;
  }
}

function nothingRunning(deps: RespondDeps, control: StreamControl, ctx: ControlContext): Response {
  const status = control.method === 'GET' ? 204 : 200;
  const duration_ms = deps.internal.now() - ctx.startedAt;
  deps.log({ ...ctx.context, resumed: true, level: 'info', status, outcome: 'complete', duration_ms });
  if (status === 204) return new Response(null, { status, headers: ctx.headers });
  return Response.json({ stopped: false }, { headers: ctx.headers });
}

function notFound(): ProxyError {
  return new ProxyError(404, 'chat_not_found', 'There is no reply to resume for this chat.');
}
