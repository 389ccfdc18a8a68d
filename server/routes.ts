import type { ChatHandler } from '../lib/chat-handler';
import { errorResponse } from '../lib/errors';
import { type PageSettingsSource, pageSettingsResponse } from '../lib/http/page-settings';
import { requestIdFrom } from '../lib/http/request-id';
import { baseHeaders, notFound } from '../lib/http/responses';
import { defaultInternal } from '../lib/internal';
import { type ChatPage, favicon } from './chat-page';
import type { HostCheck } from './host-check';

/**
 * The Node server's routing: the very same chat handler as the edge function, the chat page (with its favicon and
 * the models it may offer), a health check.
 * The host check comes before anything else (DNS rebinding, server/host-check.ts), except for the health check:
 * platforms probe it by an internal address no one would list.
 */
export function routes(
  chat: ChatHandler,
  page: ChatPage,
  checkHost: HostCheck,
  models?: PageSettingsSource,
): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    const { pathname } = url;
    const read = req.method === 'GET' || req.method === 'HEAD';
    const health = read && pathname === '/healthz';
    const misdirected = health ? undefined : checkHost(url);
    if (misdirected) return errorResponse(misdirected, newHeaders(req));
    if (CHAT_PATH.test(pathname)) return chat(req);
    if (read && pathname === '/') return page.html();
    if (read && pathname === '/chat.js') return page.script();
    const headers = newHeaders(req);
    if (read && (pathname === '/favicon.svg' || pathname === '/favicon.ico')) return favicon(headers);
    if (read && models && pathname === '/api/models') return pageSettingsResponse(models, headers);
    if (health) {
      const body = req.method === 'HEAD' ? null : 'ok\n';
      return new Response(body, { headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' } });
    }
    return errorResponse(notFound(), headers);
  };
}

/**
 * The chat, and `/api/chat/{chatId}/stream`: resuming (GET) and stopping (DELETE) a reply, as useChat's resume calls it.
 * Nothing else under `/api/chat/` is the chat (as on Vercel, where each is its own file): a 404, not a chat request.
 */
const CHAT_PATH = /^\/api\/chat(?:\/[^/]+\/stream)?\/?$/;

const newHeaders = (req: Request) => baseHeaders(requestIdFrom(req, defaultInternal.newId));
