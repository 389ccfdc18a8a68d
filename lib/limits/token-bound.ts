import type { ToolDeclaration } from '../config/tools';
import { attachmentTokens, textOf } from '../parts/content';
import type { ChatRequest } from '../types';

/** What every chat message costs on top of its text in OpenAI's format (role and separators), rounded up. */
export const PER_MESSAGE = 4;
export const PER_REPLY = 3;

/**
 * An upper bound of the prompt's tokens, without a tokenizer: every token of a byte-level BPE tokenizer (OpenAI's,
 * Llama's, Mistral's...) is at least one byte of UTF-8, so the byte count bounds the token count. It overestimates
 * ordinary text about fourfold, which is the price of a budget that can never be overshot. Attachments add their
 * estimate (lib/parts/content.ts): `IMAGE_TOKENS` per image, the decoded bytes of a PDF or text file.
 */
export function promptTokenBound(request: Pick<ChatRequest, 'messages'>, operatorTokens: number): number {
  let bytes = operatorTokens;
  for (const message of request.messages) {
    bytes += utf8Length(textOf(message)) + attachmentTokens(message) + PER_MESSAGE;
  }
  return bytes + PER_REPLY;
}

/**
 * The same bound of what the operator adds to every prompt (`Config.operatorTokens`): the system prompt, and the
 * declared tools, which the upstream renders into the prompt too (as their JSON, at most, plus a frame each).
 */
export function operatorTokenBound(systemPrompt: string, tools: readonly ToolDeclaration[]): number {
  const system = systemPrompt ? utf8Length(systemPrompt) + PER_MESSAGE : 0;
  const declared = tools.length ? utf8Length(JSON.stringify(tools)) + PER_MESSAGE * tools.length : 0;
  return system + declared;
}

/** The worst case a request can cost: its whole prompt plus every output token it may generate. */
export function worstCaseTokens(
  request: Pick<ChatRequest, 'messages' | 'maxTokens'>,
  operatorTokens: number,
): number {
  return promptTokenBound(request, operatorTokens) + request.maxTokens;
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code < 0xdc00) {
      bytes += 4; // a surrogate pair: one 4-byte character
      i++;
    } else bytes += 3;
  }
  return bytes;
}
