import type { FinishReason, UIMessageChunk } from 'ai';
import type { ChatMetadata, Usage } from '../types';
import type { Framing } from './reply-stream';
import { type PendingCall, parseArguments, toolCallTracker } from './tool-calls';

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

/**
 * `sse({ type: 'text-delta', id, delta })`, the same bytes, for the one event sent per token: only the delta is
 * stringified (`idJson` once per part), 0.25 → 0.06 µs per token on Node 20 (micro-benchmark).
 */
const textDelta = (idJson: string, delta: string) =>
  `data: {"type":"text-delta","id":${idJson},"delta":${JSON.stringify(delta)}}\n\n`;

export interface UiReplyMeta {
  /** useChat's id for the message: the one being regenerated, or a new one. */
  readonly messageId: string;
  /** The model that answered (absent for the operator's fallback message). */
  readonly model: string | undefined;
  /** Oldest messages left out of the conversation to fit the caps; the app hears of it right after `start`. */
  readonly trimmed?: number;
  /** What the reply cost in USD, for `finish` (lib/cost); `undefined`: unknown, and left out of the metadata. */
  readonly costOf?: (usage: Usage) => number | undefined;
}

/**
 * The ai SDK's UI message stream: what `useChat` reads. Reasoning and text each open a part when they start and close
 * it when the other takes over; `start` and `finish` carry `messageMetadata` (`ChatMetadata`). Errors become an
 * `error` part, which `useChat` surfaces. A tool call streams as `tool-input-start` and `tool-input-delta`, and its
 * input becomes available just before `finish`.
 */
export function uiFraming(meta: UiReplyMeta): Framing {
  let open: { type: 'text' | 'reasoning'; id: string; idJson: string } | undefined;
  let parts = 0;
  const model = meta.model ? { model: meta.model } : {};
  const close = (): UIMessageChunk[] => {
    if (!open) return [];
    const end: UIMessageChunk = { type: open.type === 'text' ? 'text-end' : 'reasoning-end', id: open.id };
    open = undefined;
    return [end];
  };
  const switchTo = (type: 'text' | 'reasoning'): UIMessageChunk[] => {
    if (open?.type === type) return [];
    const closed = close();
    const id = `${type}-${parts++}`;
    open = { type, id, idJson: JSON.stringify(id) };
    return [...closed, { type: type === 'text' ? 'text-start' : 'reasoning-start', id: open.id }];
  };
  const calls = toolCallTracker();
  return {
    start: () =>
      sse(
        { type: 'start', messageId: meta.messageId, messageMetadata: model },
        ...trimmedPart(meta.trimmed),
        // A step, as streamText frames one: useChat's lastAssistantMessageIsCompleteWithToolCalls looks at the last
        // step only, so the reply to a tool's answer (a new step of the same message) does not look like more calls.
        { type: 'start-step' },
      ),
    toolCalls: (fragments) => {
      const chunks: UIMessageChunk[] = close();
      for (const fragment of fragments) {
        const { call, started, argumentsDelta } = calls.add(fragment);
        const toolCallId = call.id;
        if (started) chunks.push({ type: 'tool-input-start', toolCallId, toolName: call.name });
        if (argumentsDelta)
          chunks.push({ type: 'tool-input-delta', toolCallId, inputTextDelta: argumentsDelta });
      }
      return sse(...chunks);
    },
    text: (delta) => {
      // The hot path: one text part, already open.
      if (open?.type === 'text') return textDelta(open.idJson, delta);
      const opened = switchTo('text');
      return sse(...opened) + textDelta(open?.idJson ?? '""', delta);
    },
    reasoning: (delta) => {
      const opened = switchTo('reasoning');
      return sse(...opened, { type: 'reasoning-delta', id: open?.id ?? '', delta });
    },
    end: (reason, usage) => {
      const finishReason = (reason && FINISH_REASONS[reason]) || 'other';
      const costUsd = usage && meta.costOf?.(usage);
      // Not spreads followed by a property, which Node 20 builds on a slow path (see lib/stream/respond.ts).
      const messageMetadata: ChatMetadata = Object.assign(
        {},
        model,
        usageMetadata(usage),
        costUsd !== undefined ? { costUsd } : undefined,
        { finishReason },
      );
      // A call's arguments are whole only now: useChat runs `onToolCall` on `tool-input-available`.
      const inputs = calls.all().map(inputChunk);
      return (
        sse(
          ...close(),
          ...inputs,
          { type: 'finish-step' },
          { type: 'finish', finishReason, messageMetadata },
        ) + DONE
      );
    },
    error: (errorText) => sse(...close(), { type: 'error', errorText }) + DONE,
  };
}

/** A finished call: its parsed input, or `tool-input-error` (useChat shows the error; no tool runs) for bad JSON. */
function inputChunk(call: PendingCall): UIMessageChunk {
  const parsed = parseArguments(call.arguments);
  const { id: toolCallId, name: toolName } = call;
  if ('input' in parsed) return { type: 'tool-input-available', toolCallId, toolName, input: parsed.input };
  return { type: 'tool-input-error', toolCallId, toolName, input: call.arguments, errorText: parsed.error };
}

/**
 * A transient data part: useChat hands it to `onData` and keeps it out of the message, so it never comes back in the
 * history it resends.
 */
function trimmedPart(trimmed: number | undefined): UIMessageChunk[] {
  return trimmed ? [{ type: 'data-trimmed', data: { messages: trimmed }, transient: true }] : [];
}

function usageMetadata(usage: Usage | undefined): Pick<ChatMetadata, 'usage'> {
  if (!usage) return {};
  const { promptTokens, completionTokens, reasoningTokens, totalTokens } = usage;
  const counts = { promptTokens, completionTokens };
  if (reasoningTokens !== undefined) Object.assign(counts, { reasoningTokens });
  return { usage: Object.assign(counts, { totalTokens }) };
}

/** A UI stream's headers: the SDK's (including `x-vercel-ai-ui-message-stream: v1`), ours winning on conflict. */
export function uiStreamHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.assign({}, UI_STREAM_HEADERS, headers); // not a spread: see lib/stream/respond.ts
}
