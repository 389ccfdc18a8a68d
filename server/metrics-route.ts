import { createHash, timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import { errorResponse, ProxyError } from '../lib/errors';
import { requestIdFrom } from '../lib/http/request-id';
import { baseHeaders } from '../lib/http/responses';
import { defaultInternal } from '../lib/internal';

/**
 * `GET /metrics` in the Prometheus text format, for a scraper holding `METRICS_TOKEN` as a bearer token; every
 * other request goes on to `next`. It comes before the host check: a scraper reaches the server by an internal
 * address no one would list, and a page that DNS-rebinds its way here still has no token.
 */
export function withMetrics(
  registry: Registry,
  token: string,
  next: (req: Request) => Promise<Response>,
): (req: Request) => Promise<Response> {
  const expected = digest(token);
  return async (req) => {
    if (new URL(req.url).pathname !== '/metrics') return next(req);
    const headers = baseHeaders(requestIdFrom(req, defaultInternal.newId));
    if (req.method !== 'GET' && req.method !== 'HEAD') return errorResponse(notAllowed(req.method), headers);
    if (!authorized(req, expected)) return errorResponse(unauthorized(), headers);
    const body = req.method === 'HEAD' ? null : await registry.metrics();
    return new Response(body, {
      headers: { ...headers, 'content-type': registry.contentType, 'cache-control': 'no-store' },
    });
  };
}

/** Compared as SHA-256 digests in constant time: equal lengths, and no early exit that times a guess. */
function authorized(req: Request, expected: Buffer): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get('authorization') ?? '');
  return timingSafeEqual(digest(match?.[1] ?? ''), expected);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function unauthorized(): ProxyError {
  return new ProxyError(401, 'unauthorized', 'The metrics need a valid bearer token (METRICS_TOKEN).', {
    headers: { 'www-authenticate': 'Bearer realm="metrics"' },
  });
}

function notAllowed(method: string): ProxyError {
  return new ProxyError(405, 'method_not_allowed', `Method ${method} is not allowed. Use GET.`, {
    headers: { allow: 'GET, HEAD' },
  });
}
