import type { Config } from '../config';

/**
 * What the chat page learns from `GET /api/models`: the models its picker offers (`ALLOWED_MODELS`, `CHAT_MODEL`),
 * and whether replies can be resumed (`RESUME`), so it sets useChat's `resume` only when they can. The Node server
 * and the Vercel function (api/models.ts) answer it alike.
 */
export type PageSettingsSource = Pick<Config, 'allowedModels' | 'defaultModel'> & {
  readonly replies: Pick<Config['replies'], 'resume'>;
};

export function pageSettingsResponse(config: PageSettingsSource, headers: Record<string, string>): Response {
  const body = { models: config.allowedModels, default: config.defaultModel, resume: config.replies.resume };
  return Response.json(body, { headers });
}
