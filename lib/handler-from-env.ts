import { type ChatHandler, createChatHandler } from './chat-handler';
import { ConfigError, type Env, loadConfig } from './config';
import { errorResponse, ProxyError } from './errors';
import { jsonLogger, type Logger } from './log';
import { createUpstream } from './upstream';

export interface FromEnvOptions {
  readonly fetch?: typeof fetch;
  readonly log?: Logger;
}

/**
 * Builds the handler from environment variables, once, at module scope. On a serverless platform there is no
 * "startup" to fail, so a bad config is logged loudly (naming the variable) and every request gets a clean 503
 * instead of a crashed function.
 */
export function handlerFromEnv(env: Env, options: FromEnvOptions = {}): ChatHandler {
  try {
    const config = loadConfig(env);
    const upstream = createUpstream({ ...config, ...(options.fetch ? { fetch: options.fetch } : {}) });
    return createChatHandler({ config, upstream, ...(options.log ? { log: options.log } : {}) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return misconfigured(options.log ?? jsonLogger, error.message);
  }
}

function misconfigured(log: Logger, detail: string): ChatHandler {
  const error = new ProxyError(
    503,
    'proxy_not_configured',
    'The chat service is not set up yet. Please try again later.',
    {
      detail,
    },
  );
  return async () => {
    const requestId = crypto.randomUUID();
    log({
      level: 'error',
      msg: 'chat',
      request_id: requestId,
      status: 503,
      outcome: 'rejected',
      duration_ms: 0,
      error_code: error.code,
      error_detail: detail,
    });
    return errorResponse(error, { 'x-request-id': requestId, 'cache-control': 'no-store' });
  };
}
