import { ipAddress } from '@vercel/functions/headers';
import type { ChatHandler } from '../chat-handler';
import { ConfigError, type Env, loadConfig } from '../config';
import { createProxy } from '../create-proxy';
import { errorResponse, ProxyError } from '../errors';
import { pageSettingsResponse } from '../http/page-settings';
import { requestIdFrom } from '../http/request-id';
import { baseHeaders } from '../http/responses';
import { defaultInternal } from '../internal';
import { jsonLogger } from '../log';

/**
 * The Vercel adapter (the Node server's twin is server/node-platform.ts): the client IP from Vercel's headers, its
 * `waitUntil`, and Upstash REST for shared state, since an edge function cannot open a TCP socket.
 *
 * Built once, at module scope (the limiter's cache and the clients only pay off there). On a serverless platform
 * there is no "startup" to fail, so a bad config is logged loudly, naming the variable, and every request gets a
 * clean 503 instead of a crashed function.
 */
export function vercelHandler(env: Env): ChatHandler {
  try {
    const config = loadConfig(env);
    return createProxy(config, {
      clientIp: (req) => ipAddress(req),
      waitUntil: vercelWaitUntil,
      ownOrigins: vercelOrigins(env),
    }).handler;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return misconfigured(error.message);
  }
}

/**
 * `GET /api/models` on Vercel (api/models.ts): what the chat page may offer and whether it may resume replies, as the
 * Node server answers it. A bad config is a 503, as for the chat.
 */
export function vercelPageSettings(env: Env): ChatHandler {
  try {
    const config = loadConfig(env);
    return async (req) => {
      const headers = baseHeaders(requestIdFrom(req, defaultInternal.newId));
      if (req.method === 'GET' || req.method === 'HEAD') return pageSettingsResponse(config, headers);
      const refusal = new ProxyError(
        405,
        'method_not_allowed',
        `Method ${req.method} is not allowed. Use GET.`,
        {
          headers: { allow: 'GET, HEAD' },
        },
      );
      return errorResponse(refusal, headers);
    };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return misconfigured(error.message);
  }
}

/**
 * The deployment's own URLs, which Vercel sets in the environment (hosts without a scheme): the page served from any
 * of them is this deployment's own, with no setting. Configuration, not the request's Host header.
 */
function vercelOrigins(env: Env): string[] {
  const hosts = [env.VERCEL_URL, env.VERCEL_BRANCH_URL, env.VERCEL_PROJECT_PRODUCTION_URL];
  return hosts
    .map((host) => host?.trim().toLowerCase() ?? '')
    .filter((host) => /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(host))
    .map((host) => `https://${host}`);
}

function misconfigured(detail: string): ChatHandler {
  const message = 'The chat service is not set up yet. Please try again later.';
  const error = new ProxyError(503, 'proxy_not_configured', message, { detail });
  return async () => {
    const requestId = defaultInternal.newId();
    const { code: error_code } = error;
    const line = {
      msg: 'chat',
      request_id: requestId,
      status: 503,
      outcome: 'rejected',
      duration_ms: 0,
    } as const;
    jsonLogger({ ...line, level: 'error', error_code, error_detail: detail });
    return errorResponse(error, baseHeaders(requestId));
  };
}

/**
 * `waitUntil` of `@vercel/functions`, which reads it from the request context Vercel puts on `globalThis` under
 * this symbol. Spelled out here because the package's entry point (its only export of it) brings its cache, OIDC and
 * purge clients into the edge bundle, about 20 KB, for these three lines. Outside Vercel there is no context, and the
 * promise simply runs.
 */
const REQUEST_CONTEXT = Symbol.for('@vercel/request-context');

function vercelWaitUntil(promise: Promise<unknown>): void {
  const holder = (
    globalThis as Record<symbol, { get?: () => { waitUntil?: (p: Promise<unknown>) => void } }>
  )[REQUEST_CONTEXT];
  const waitUntil = holder?.get?.()?.waitUntil;
  if (waitUntil) waitUntil(promise);
  else void promise.catch(() => {});
}
