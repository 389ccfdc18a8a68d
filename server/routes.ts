import type { ChatHandler } from '../lib/chat-handler';
import { errorResponse, ProxyError } from '../lib/errors';
import type { ChatPage } from './chat-page';

/** The Node server's routing: the very same chat handler as the edge function, the chat page, a health check. */
export function routes(chat: ChatHandler, page: ChatPage): (req: Request) => Promise<Response> {
  return async (req) => {
    const { pathname } = new URL(req.url);
    if (pathname === '/api/chat') return chat(req);
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read && pathname === '/') return page.html();
    if (read && pathname === '/chat.js') return page.script();
    if (read && pathname === '/healthz') {
      return new Response(req.method === 'HEAD' ? null : 'ok\n', {
        headers: { 'content-type': 'text/plain' },
      });
    }
    const error = new ProxyError(404, 'not_found', 'Nothing here. The chat endpoint is POST /api/chat.');
    return errorResponse(error, { 'cache-control': 'no-store' });
  };
}
