import * as z from 'zod/mini';
import { operatorPromptTokens } from '../history/fit';
import { estimateTokens } from '../history/token-estimate';
import { PER_MESSAGE, PER_REPLY } from '../limits/token-bound';
import { invalid, positiveInt } from './env';
import type { ToolDeclaration } from './tools';

/** What happens to a conversation that has outgrown the caps (`MAX_MESSAGES`, `MAX_TOTAL_CHARS`, `MAX_INPUT_TOKENS`). */
export interface HistoryConfig {
  /**
   * `trim` (default): the oldest whole turns are left out until it fits, so a long chat keeps working. `refuse`:
   * a 400, as before trimming existed, for apps that would rather tell the user.
   */
  readonly overflow: 'trim' | 'refuse';
  /**
   * Input tokens per request, the system prompt and the declared tools included: what a long conversation really
   * costs on every turn.
   */
  readonly maxInputTokens: number;
}

export const historyEnv = z.object({
  HISTORY_OVERFLOW: z._default(z.enum(['trim', 'refuse'], { error: 'must be "trim" or "refuse"' }), 'trim'),
  MAX_INPUT_TOKENS: positiveInt(8_000),
});

export function toHistoryConfig(
  e: z.output<typeof historyEnv>,
  systemPrompt: string,
  tools: readonly ToolDeclaration[],
): HistoryConfig {
  // A cap the system prompt and the tools alone fill would refuse every request; say so at start instead.
  const promptTokens = operatorPromptTokens(systemPrompt, tools, estimateTokens);
  if (promptTokens + PER_MESSAGE + PER_REPLY >= e.MAX_INPUT_TOKENS) {
    const what = tools.length ? 'SYSTEM_PROMPT and TOOLS' : 'SYSTEM_PROMPT';
    throw invalid(
      'MAX_INPUT_TOKENS',
      `must leave room for the conversation: ${what} alone are about ${promptTokens} tokens`,
    );
  }
  return { overflow: e.HISTORY_OVERFLOW, maxInputTokens: e.MAX_INPUT_TOKENS };
}
