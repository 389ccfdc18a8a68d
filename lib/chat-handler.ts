import { linkedAbort } from './abort';
import type { Config } from './config';
import { errorResponse, toProxyError } from './errors';
import { errorFields, jsonLogger, type Logger, type RequestLog, usageFields } from './log';
import { readJsonBody } from './read-json-body';
import { replyStream, type StreamEnd } from './reply-stream';
import { requestIdFrom } from './request-id';
import { textFraming, textStreamResponse, wantsPlainText } from './text-stream';
import { uiFraming, uiStreamResponse } from './ui-stream';
import type { Upstream } from './upstream';
import { type ChatRequest, createRequestValidator } from './validate-request';

export interface ChatHandlerDeps {
  readonly config: Config;
  readonly upstream: Upstream;
  readonly log?: Logger;
  /** Milliseconds; injected so tests can control time. */
  readonly now?: () => number;
  readonly newId?: () => string;
}

export type ChatHandler = (req: Request) => Promise<Response>;

/**
 * The whole proxy as one Web-standard function. Read it top to bottom: guard and parse, validate, open the upstream
 * and wait for the first token (so a failure still gets a real status), then stream the rest in the asked-for protocol.
 */
export function createChatHandler(deps: ChatHandlerDeps): ChatHandler {
  const { config, upstream } = deps;
  const log = deps.log ?? jsonLogger;
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? (() => crypto.randomUUID());
  const validate = createRequestValidator(config);

  return async (req) => {
    const startedAt = now();
    const requestId = requestIdFrom(req, newId);
    const headers = responseHeaders(requestId);
    const base = { msg: 'chat' as const, request_id: requestId };
    let request: ChatRequest | undefined;
    try {
      request = validate(await readJsonBody(req, config.limits.maxBodyBytes));
      const abort = linkedAbort(req.signal);
      const reply = await upstream.open(request, abort.signal).catch((error: unknown) => {
        abort.dispose();
        throw error;
      });
      const ttft = now() - startedAt;
      const protocol = wantsPlainText(req) ? 'text' : 'ui';
      const model = request.model;
      const onEnd = (end: StreamEnd) => {
        abort.dispose();
        log({
          ...base,
          ...streamEndFields(end),
          model,
          protocol,
          ttft_ms: ttft,
          duration_ms: now() - startedAt,
          ...usageFields(reply.outcome.usage),
        });
      };
      const hooks = { abort: abort.abort, onEnd };
      const streamHeaders = { ...headers, 'x-chat-model': model };
      return protocol === 'text'
        ? textStreamResponse(replyStream(reply, textFraming, hooks), streamHeaders)
        : uiStreamResponse(replyStream(reply, uiFraming, hooks), streamHeaders);
    } catch (caught) {
      const error = toProxyError(caught);
      const line: RequestLog = {
        ...base,
        ...errorFields(error),
        status: error.status,
        outcome: 'rejected',
        duration_ms: now() - startedAt,
        ...(request ? { model: request.model } : {}),
      };
      log(line);
      return errorResponse(error, headers);
    }
  };
}

function responseHeaders(requestId: string): Record<string, string> {
  return {
    'x-request-id': requestId,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

/** The status was 200 once streaming began; the outcome says how the stream itself ended. */
function streamEndFields(
  end: StreamEnd,
): Pick<RequestLog, 'level' | 'status' | 'outcome' | 'error_code' | 'error_detail'> {
  if (end.kind === 'error') return { ...errorFields(end.error), status: 200, outcome: 'error' };
  return { level: 'info', status: 200, outcome: end.kind };
}
