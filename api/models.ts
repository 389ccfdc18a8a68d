import { vercelPageSettings } from '../lib/platform/vercel';

/**
 * GET /api/models on Vercel: the models the chat page may offer (ALLOWED_MODELS, CHAT_MODEL) and whether it may
 * resume a reply after a reload (RESUME), as the Node server answers it.
 */
export const config = { runtime: 'edge' };

export default vercelPageSettings(process.env);
