import type { ToolDeclaration } from '../config/tools';
import type { ChatMessage, ChatRequest, ContentPart } from '../types';

/** What besides the request decides the answer: the operator's side of the conversation. */
export interface KeyContext {
  readonly systemPrompt: string;
  readonly tools: readonly ToolDeclaration[];
  /** `global`, or the caller's id (`CACHE_SCOPE=caller`): replies are shared only within it. */
  readonly scope: string;
}

/**
 * The key of a reply: a SHA-256 of everything that decides the answer, taken from the validated request (never the
 * raw body, so JSON key order, whitespace, unknown fields and useChat's message ids cannot split it). In it: the
 * scope, the model asked for, the system prompt, the declared tools, `max_tokens`, `temperature`,
 * `reasoning_effort`, and every message's role and content (text; attachments by their bytes; tool calls by name
 * and arguments; tool results by the call they answer, counted in order, not by the call's id).
 */
export async function replyKey(
  request: ChatRequest,
  context: KeyContext,
  sha256 = webSha256,
): Promise<string> {
  const callOrdinals = new Map<string, number>();
  const canonical = [
    1, // the key's own version: bump it when its contents change, so old entries are simply never found
    context.scope,
    request.model,
    context.systemPrompt,
    context.tools,
    request.maxTokens,
    request.temperature ?? null,
    request.reasoningEffort ?? null,
    request.messages.map((message) => canonicalMessage(message, callOrdinals)),
  ];
  return sha256(JSON.stringify(canonical));
}

/** A text's SHA-256 in hex, as the platform computes it fastest (the Node server: its synchronous `crypto.hash`). */
export type Sha256Hex = (text: string) => string | Promise<string>;

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** Web Crypto's, which every platform has (the edge); asynchronous, about 40 µs a call on Node. */
export const webSha256: Sha256Hex = async (text) => {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let hex = '';
  for (const byte of digest) hex += HEX[byte];
  return hex;
};

function canonicalMessage(message: ChatMessage, callOrdinals: Map<string, number>): unknown {
  if (message.role === 'tool') return ['tool', callOrdinals.get(message.toolCallId) ?? -1, message.content];
  if (message.role === 'assistant') {
    const calls = (message.toolCalls ?? []).map((call) => {
      callOrdinals.set(call.id, callOrdinals.size);
      return [call.name, call.arguments];
    });
    return ['assistant', message.content, calls];
  }
  const { content } = message;
  return ['user', typeof content === 'string' ? content : content.map(canonicalPart)];
}

function canonicalPart(part: ContentPart): unknown {
  if (part.type === 'text') return ['text', part.text];
  if (part.type === 'image_url') return ['image', part.image_url.url];
  return ['file', part.file.filename ?? '', part.file.file_data];
}
