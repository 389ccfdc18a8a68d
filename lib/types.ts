/**
 * The shapes both sides of the proxy share: what a validated request looks like (lib/http produces it, the upstream
 * consumes it) and what a reply reports (the upstream produces it, the stream and the log consume it). They live
 * here, depending on nothing, so no stage imports another just for a type.
 */

export type ChatRole = 'user' | 'assistant';

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** A request that passed every check: the only shape the upstream ever sees. */
export interface ChatRequest {
  readonly messages: readonly ChatMessage[];
  readonly model: string;
  readonly maxTokens: number;
  readonly temperature: number | undefined;
}

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
}

/** A reply whose first token has already arrived, so the HTTP status is settled. */
export interface Reply {
  /** Text deltas, starting with the first. A failure mid-stream is thrown as a ProxyError. */
  readonly tokens: AsyncIterable<string>;
  /** Filled in as the stream is read: the upstream reports usage in its last chunk. */
  readonly outcome: { usage?: Usage; finishReason?: string; deltas: number };
}
