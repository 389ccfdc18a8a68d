import type { ChatHandler } from '../lib/chat-handler';
import { errorResponse } from '../lib/errors';
import { requestIdFrom } from '../lib/http/request-id';
import { baseHeaders, notFound } from '../lib/http/responses';
import { defaultInternal } from '../lib/internal';
import type { ChatPage } from './chat-page';

/** The Node server's routing: the very same chat handler as the edge function, the chat page, a health check. */
export function routes(chat: ChatHandler, page: ChatPage): (req: Request) => Promise<Response> {
  return async (req) => {
    const { pathname } = new URL(req.url);
    if (pathname === '/api/chat') return chat(req);
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read && pathname === '/') return page.html();
    if (read && pathname === '/chat.js') return page.script();
    const headers = baseHeaders(requestIdFrom(req, defaultInternal.newId));
    if (read && pathname === '/healthz') {
      const body = req.method === 'HEAD' ? null : 'ok\n';
      return new Response(body, { headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' } });
    }
    return errorResponse(notFound(), headers);
  };
}
