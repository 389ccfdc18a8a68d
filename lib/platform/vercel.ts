import type { Redis } from '@upstash/redis';
import { waitUntil as vercelWaitUntil } from '@vercel/functions';
import { ipAddress } from '@vercel/functions/headers';
import type { ChatHandler } from '../chat-handler';
import { type Config, ConfigError, type Env, loadConfig } from '../config';
import { wireChatHandler } from '../create-proxy';
import { errorResponse, ProxyError } from '../errors';
import { limitStoresFor } from '../limits/describe';
import { jsonLogger, type Logger } from '../log';
import { upstashRestRedis } from '../redis/upstash-rest';

export interface FromEnvOptions {
  readonly fetch?: typeof fetch;
  readonly log?: Logger;
}

/**
 * Builds the edge handler from environment variables, once, at module scope (the limiter's cache and the clients
 * only pay off there). On a serverless platform there is no "startup" to fail, so a bad config is logged loudly,
 * naming the variable, and every request gets a clean 503 instead of a crashed function.
 */
export function handlerFromEnv(env: Env, options: FromEnvOptions = {}): ChatHandler {
  try {
    const config = loadConfig(env);
    return wireChatHandler(config, {
      stores: limitStoresFor(config.rateLimit, edgeRedis(config)),
      clientIp: (req) => ipAddress(req),
      waitUntil: vercelWaitUntil,
      ...(options.log ? { log: options.log } : {}),
      ...(options.fetch ? { upstream: { fetch: options.fetch } } : {}),
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return misconfigured(options.log ?? jsonLogger, error.message);
  }
}

function edgeRedis(config: Config): Redis | undefined {
  const { store, redisTimeoutMs } = config.rateLimit;
  if (store.kind === 'redis') {
    throw new ConfigError(
      'Invalid configuration:\n  - REDIS_URL needs a TCP connection, which edge functions cannot open: use Upstash REST (UPSTASH_REDIS_REST_URL/_TOKEN) here',
    );
  }
  return store.kind === 'upstash' ? upstashRestRedis({ ...store, timeoutMs: redisTimeoutMs }) : undefined;
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
