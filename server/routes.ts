import type { ChatHandler } from '../lib/chat-handler';
import { errorResponse, ProxyError } from '../lib/errors';

/** The Node server's routing: the very same chat handler as the edge function, plus a health check. */
export function routes(chat: ChatHandler): (req: Request) => Promise<Response> {
  return async (req) => {
    const { pathname } = new URL(req.url);
    if (pathname === '/api/chat') return chat(req);
    if (pathname === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      return new Response(req.method === 'HEAD' ? null : 'ok\n', {
        headers: { 'content-type': 'text/plain' },
      });
    }
    return errorResponse(
      new ProxyError(404, 'not_found', `Nothing here. The chat endpoint is POST /api/chat.`),
      {
        'cache-control': 'no-store',
      },
    );
  };
}
