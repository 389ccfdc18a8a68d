import type { ChatMessage, ContentPart } from '../types';

/**
 * What one image costs in the token budget's reservation and the history's token cap. A fixed, documented estimate:
 * the proxy never decodes an image's dimensions, and OpenAI's own price for a high-detail 1024×1024 image is 765
 * tokens (85 + 4 tiles × 170), so 1,000 covers the usual sizes with room to spare. Larger images cost the provider
 * more; the real usage, settled after the reply, corrects the budget either way.
 */
export const IMAGE_TOKENS = 1_000;

/**
 * The text a message carries, as the caps count it: its string, or its text parts joined (attachments have none);
 * an assistant's tool calls add their names and JSON arguments, and a tool message is its output, so tool traffic
 * costs the same as any other text.
 */
export function textOf(message: ChatMessage): string {
  const { content } = message;
  if (message.role === 'assistant' && message.toolCalls?.length) {
    return content + message.toolCalls.map((call) => call.name + call.arguments).join('');
  }
  if (typeof content === 'string') return content;
  return content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

/**
 * The tokens a message's attachments may cost: `IMAGE_TOKENS` per image, and a file (a PDF or text file) its decoded
 * bytes, since every token of a byte-level tokenizer is at least one byte.
 */
export function attachmentTokens(message: ChatMessage): number {
  const { content } = message;
  if (typeof content === 'string') return 0;
  let tokens = 0;
  for (const part of content) tokens += partTokens(part);
  return tokens;
}

function partTokens(part: ContentPart): number {
  if (part.type === 'image_url') return IMAGE_TOKENS;
  if (part.type === 'file')
    return base64Bytes(part.file.file_data.slice(part.file.file_data.indexOf(',') + 1));
  return 0;
}

/** Whether a message carries an image: a model declared without vision refuses it. */
export function hasImage(message: ChatMessage): boolean {
  return typeof message.content !== 'string' && message.content.some((part) => part.type === 'image_url');
}

/** The decoded size of base64 text, without decoding it. */
export function base64Bytes(base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return Math.floor((base64.length * 3) / 4) - padding;
}
