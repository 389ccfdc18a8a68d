import type { Reply } from '../types';

/**
 * The operator's `FALLBACK_MESSAGE`, streamed like a normal reply when every upstream failed: the user sees a
 * helpful answer instead of an error. Words keep their trailing spaces so the text reassembles exactly.
 */
export function fallbackReply(message: string): Reply {
  const words = message.match(/\s*\S+\s*|\s+/g) ?? [message];
  const outcome: Reply['outcome'] = { deltas: 0, finishReason: 'stop' };
  async function* tokens(): AsyncGenerator<string> {
    for (const word of words) {
      outcome.deltas++;
      yield word;
    }
  }
  return { tokens: tokens(), outcome };
}
