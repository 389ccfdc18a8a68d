import * as z from 'zod/mini';
import { modelName, positiveInt } from './env';

/**
 * Input moderation, off unless asked for. OpenAI holds the key owner responsible for what end users send, so an
 * operator can have the last user message checked by the moderation endpoint of the main upstream
 * (`OPENAI_BASE_URL` + `OPENAI_API_KEY`) before the model sees it.
 */
export interface ModerationConfig {
  /** `off`: no check at all. `input`: the last user message is checked before the upstream call. */
  readonly mode: 'off' | 'input';
  /**
   * When the moderation endpoint itself fails: `open` (default) lets the message through and says so in the log,
   * `closed` answers 503, like `RATE_LIMIT_FAIL`.
   */
  readonly failMode: 'open' | 'closed';
  readonly model: string;
  /** One moderation call may take this long; it sits in front of every chat, before the first token. */
  readonly timeoutMs: number;
}

export const moderationEnv = z.object({
  MODERATION: z._default(z.enum(['off', 'input'], { error: 'must be "off" or "input"' }), 'off'),
  MODERATION_FAIL: z._default(z.enum(['open', 'closed'], { error: 'must be "open" or "closed"' }), 'open'),
  MODERATION_MODEL: z._default(modelName(), 'omni-moderation-latest'),
  MODERATION_TIMEOUT_MS: positiveInt(3_000),
});

type ModerationEnv = z.output<typeof moderationEnv>;

export function toModerationConfig(e: ModerationEnv): ModerationConfig {
  return {
    mode: e.MODERATION,
    failMode: e.MODERATION_FAIL,
    model: e.MODERATION_MODEL,
    timeoutMs: e.MODERATION_TIMEOUT_MS,
  };
}
