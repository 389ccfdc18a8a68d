import { ProxyError } from '../errors';

/** What the chat endpoint answers to; said in `Allow` on a 405 and on a plain OPTIONS. */
export const ALLOW = 'POST, OPTIONS';

/**
 * The headers every response of the project carries, chat or error, edge or Node, 404 or health check: the request
 * id (so a user's report can be found in the log), no caching of anything personal, and no MIME sniffing.
 */
export function baseHeaders(requestId: string): Record<string, string> {
  return {
    'x-request-id': requestId,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

export function methodNotAllowed(method: string): ProxyError {
  return new ProxyError(405, 'method_not_allowed', `Method ${method} is not allowed. Use POST.`, {
    headers: { allow: ALLOW },
  });
}

export function notFound(): ProxyError {
  return new ProxyError(404, 'not_found', 'Nothing here. The chat endpoint is POST /api/chat.');
}
