import { vercelHandler } from '../../../lib/platform/vercel';

/**
 * GET and DELETE /api/chat/{chatId}/stream on Vercel: resuming and stopping a running reply (`RESUME=on`), as
 * useChat's resume calls it. The same handler as api/chat.ts, which routes these by path; replies are shared through
 * the Redis store, since this function's instances are not api/chat.ts's.
 */
export const config = { runtime: 'edge' };

export default vercelHandler(process.env);
