import { vercelHandler } from '../lib/platform/vercel';

/**
 * POST /api/chat on Vercel's edge runtime. To move to Vercel's Node.js runtime (Fluid compute) instead, change
 * this one line to `{ runtime: 'nodejs' }`: the handler is a Web-standard `(Request) => Response` either way.
 */
export const config = { runtime: 'edge' };

// Module scope: parsed and built once per instance, not per request. The request path, in order, lives in
// lib/chat-handler.ts: CORS, auth, body, validation, limits, upstream (first token), then the stream.
export default vercelHandler(process.env);
