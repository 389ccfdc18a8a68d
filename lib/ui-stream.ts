import { createUIMessageStreamResponse, type FinishReason, type UIMessageChunk } from 'ai';
import type { Framing } from './reply-stream';

const TEXT_ID = 'text-0';

/** OpenAI's finish reasons, spelled the way the ai SDK spells them. */
const FINISH_REASONS: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  content_filter: 'content-filter',
  tool_calls: 'tool-calls',
  function_call: 'tool-calls',
};

/** The ai SDK's UI message stream: what `useChat` reads. Errors become an `error` part, which `useChat` surfaces. */
export const uiFraming: Framing<UIMessageChunk> = {
  start: () => [{ type: 'start' }, { type: 'text-start', id: TEXT_ID }],
  delta: (delta) => ({ type: 'text-delta', id: TEXT_ID, delta }),
  end: (reason) => [
    { type: 'text-end', id: TEXT_ID },
    { type: 'finish', finishReason: (reason && FINISH_REASONS[reason]) || 'other' },
  ],
  error: (errorText) => [
    { type: 'text-end', id: TEXT_ID },
    { type: 'error', errorText },
  ],
};

export function uiStreamResponse(
  stream: ReadableStream<UIMessageChunk>,
  headers: Record<string, string>,
): Response {
  // The library does the SSE framing and sets `x-vercel-ai-ui-message-stream: v1`; our headers win on conflict.
  return createUIMessageStreamResponse({ stream, headers });
}
