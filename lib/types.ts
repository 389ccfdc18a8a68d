/**
 * The shapes both sides of the proxy share: what a validated request looks like (lib/http produces it, the upstream
 * consumes it) and what a reply reports (the upstream produces it, the stream and the log consume it). They live
 * here, depending on no other module of the proxy, so no stage imports another just for a type.
 */

import type { Context as TraceContext } from '@opentelemetry/api';

/**
 * An upstream answer's headers, read by name: all the rate-limit and queue code needs, so a transport need not build
 * a `Headers` for every answer (see `ResponseHeaders` in lib/upstream/openai-http.ts).
 */
export type HeaderLookup = Pick<Headers, 'get'>;

export type ChatRole = 'user' | 'assistant';

/**
 * A piece of a user message in OpenAI's content-part shapes: text, an image (a checked data URL or an https URL from
 * `ATTACHMENT_HOSTS`), or an inline file (a PDF or text file, as a data URL). Only user messages carry parts.
 */
export type ContentPart =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'image_url'; readonly image_url: { readonly url: string } }
  | { readonly type: 'file'; readonly file: { readonly filename?: string; readonly file_data: string } };

/**
 * A message without attachments keeps its content a plain string (the common case, and what every provider takes);
 * a user message with attachments carries parts.
 */
export type ChatMessage =
  | { readonly role: 'user'; readonly content: string | readonly ContentPart[] }
  | { readonly role: 'assistant'; readonly content: string; readonly toolCalls?: readonly ToolCall[] }
  | ToolMessage;

/** A call the model made to an operator-declared tool (`TOOLS`), as history sends it back: arguments are JSON text. */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** What the caller's tool answered to one call: its output as JSON text, or its error text. */
export interface ToolMessage {
  readonly role: 'tool';
  readonly toolCallId: string;
  readonly content: string;
}

/** How much a reasoning model may think, as OpenAI's `reasoning_effort` spells it. */
export type ReasoningEffort = 'minimal' | 'low' | 'medium' | 'high';

/** A request that passed every check: the only shape the upstream ever sees. */
export interface ChatRequest {
  readonly messages: readonly ChatMessage[];
  readonly model: string;
  readonly maxTokens: number;
  readonly temperature: number | undefined;
  readonly reasoningEffort: ReasoningEffort | undefined;
  /** The id of the assistant message being regenerated (useChat's `messageId`), kept for the reply's `start`. */
  readonly messageId: string | undefined;
  /** A stable, non-reversible hash of the caller id, sent upstream for abuse reports (`SAFETY_IDENTIFIER`). */
  readonly safetyIdentifier?: string | undefined;
  /** How this request waits for upstream capacity (lib/queue). Never sent upstream. */
  readonly ticket?: QueueTicket | undefined;
  /**
   * The request's span (lib/observe/request-traces.ts), parent of its upstream attempts' spans; absent when nothing
   * records. Passed by hand because the edge has no dependable async context. Never sent upstream.
   */
  readonly trace?: TraceContext | undefined;
}

/** Where a request stands in the line for upstream capacity on this instance: 1 goes next. */
export interface PlaceInLine {
  readonly position: number;
  /** When it should reach the upstream, estimated from how long streams have held their slots; null: no estimate yet. */
  readonly etaMs: number | null;
}

/** A request's ticket for the queue: whose it is, how urgent, what it may cost, and who hears where it stands. */
export interface QueueTicket {
  /** The limiter's caller id: capacity goes round-robin across callers. */
  readonly callerId: string;
  /** Higher is served first (`QUEUE_PRIORITY_CLAIM`); 0 by default. */
  readonly priority: number;
  /** The worst case it can cost, reserved from a provider's `UPSTREAM_TPM` and settled to the real usage. */
  readonly tokens: number;
  /** Told each new place while the request waits, and `undefined` once it is out of line (served or gone). */
  readonly onPlace?: ((place: PlaceInLine | undefined) => void) | undefined;
  /** Told how long it waited (pauses and the line), when it had to wait at all: for its log line. */
  readonly onWaited?: ((ms: number) => void) | undefined;
}

export interface Usage {
  readonly promptTokens: number;
  /** The part of `promptTokens` read from the provider's prompt cache (billed cheaper), when the upstream says. */
  readonly cachedPromptTokens?: number | undefined;
  /** Everything generated, reasoning included. */
  readonly completionTokens: number;
  /** The part of `completionTokens` spent thinking, when the upstream says. */
  readonly reasoningTokens: number | undefined;
  readonly totalTokens: number;
}

/**
 * One piece of a tool call as the upstream streams it: the first fragment of a call names it (`id`, `name`), later
 * ones carry pieces of its JSON `arguments`. `index` tells parallel calls apart.
 */
export interface ToolCallFragment {
  readonly index: number;
  readonly id?: string;
  readonly name?: string;
  readonly arguments?: string;
}

/**
 * One piece of a reply: answer text as a plain string (the hot path), a piece of the model's reasoning, or fragments
 * of tool calls (one chunk may carry several, for parallel calls).
 */
export type Delta =
  | string
  | { readonly reasoning: string }
  | { readonly toolCalls: readonly ToolCallFragment[] };

/** A reply whose first token (of text, reasoning or a tool call) has already arrived, so the HTTP status is settled. */
export interface Reply {
  /** Deltas, starting with the first. A failure mid-stream is thrown as a ProxyError. */
  readonly tokens: AsyncIterable<Delta>;
  /** Filled in as the stream is read: the upstream reports usage in its last chunk. */
  readonly outcome: { usage?: Usage; finishReason?: string; deltas: number };
  /** Parameters this upstream refused and the request was fixed for (`model: max_tokens→max_completion_tokens`). */
  readonly adapted?: readonly string[];
  /** A token is already here: the next step of `tokens` will not wait (so several can go out as one chunk). */
  readonly ready?: () => boolean;
  /**
   * The next token if it is already here, taken without a step of `tokens`: what that step would have given, without
   * its promise (on the path of every token, one upstream read often carries dozens). Undefined when the next token is
   * not simply here: the next step of `tokens` tells what comes (it may wait, end the reply, throw, or pass over an
   * event that is no token).
   */
  readonly take?: () => Delta | undefined;
}

/**
 * What the UI message stream tells the app about a reply, as `message.metadata` (`UIMessage<ChatMetadata>` in
 * `useChat`): the model on `start`, and on `finish` the model, the usage and why it stopped.
 */
export interface ChatMetadata {
  readonly model?: string;
  readonly usage?: {
    readonly promptTokens: number;
    readonly completionTokens: number;
    readonly reasoningTokens?: number;
    readonly totalTokens: number;
  };
  /** The ai SDK's spelling: `stop`, `length`, `content-filter`, `tool-calls`, `error`, `other`. */
  readonly finishReason?: string;
  /** What the reply cost in USD, from the model's price; absent when the price is unknown (never a made-up 0). */
  readonly costUsd?: number;
}
