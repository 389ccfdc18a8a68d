import type { FinishReason, UIMessageChunk } from 'ai';
import type { Framing } from './reply-stream';

const TEXT_ID = 'text-0';

/**
 * The ai SDK's `UI_MESSAGE_STREAM_HEADERS`, spelled out: importing the constant would pull the SDK's runtime (and a
 * second copy of zod) into the edge bundle for five strings. A test keeps the two equal.
 */
export const UI_STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
};

/** OpenAI's finish reasons, spelled the way the ai SDK spells them. */
const FINISH_REASONS: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  content_filter: 'content-filter',
  tool_calls: 'tool-calls',
  function_call: 'tool-calls',
};

/**
 * One SSE event, exactly as the ai SDK's `JsonToSseTransformStream` writes it. Framing here, in the same pass as
 * encoding, saves three stream stages per token; the chunk types are the SDK's own, and the tests read every stream
 * back with the SDK's `readUIMessageStream`, so any drift from the protocol fails them.
 */
const sse = (...chunks: UIMessageChunk[]) =>
  chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join('');
const DONE = 'data: [DONE]\n\n';

/** The ai SDK's UI message stream: what `useChat` reads. Errors become an `error` part, which `useChat` surfaces. */
export const uiFraming: Framing = {
  start: () => sse({ type: 'start' }, { type: 'text-start', id: TEXT_ID }),
  delta: (delta) => sse({ type: 'text-delta', id: TEXT_ID, delta }),
  end: (reason) =>
    sse(
      { type: 'text-end', id: TEXT_ID },
      { type: 'finish', finishReason: (reason && FINISH_REASONS[reason]) || 'other' },
    ) + DONE,
  error: (errorText) => sse({ type: 'text-end', id: TEXT_ID }, { type: 'error', errorText }) + DONE,
};

export function uiStreamResponse(
  stream: ReadableStream<Uint8Array>,
  headers: Record<string, string>,
): Response {
  // The SDK's headers (including `x-vercel-ai-ui-message-stream: v1`); ours win on conflict (cache-control).
  return new Response(stream, { status: 200, headers: { ...UI_STREAM_HEADERS, ...headers } });
}
