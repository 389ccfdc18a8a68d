import { DefaultChatTransport, readUIMessageStream, type UIMessage, type UIMessageChunk } from 'ai';
import type { ChatHandler } from '../../lib/chat-handler';
import type { ChatMetadata } from '../../lib/types';
import { TEST_IP } from './harness';

export interface UiResult {
  /** The assistant text exactly as useChat would assemble it. */
  readonly text: string;
  /** The assembled assistant message: its parts (text, reasoning) and `metadata`. */
  readonly message: UIMessage<ChatMetadata> | undefined;
  /** Errors the SDK raised while reading: what useChat would put in `error`. */
  readonly errors: string[];
  /** Every chunk as the SDK parsed it, transient data parts included (useChat hands those to `onData`). */
  readonly chunks: UIMessageChunk[];
  /** The response headers, as the transport's fetch saw them. */
  readonly headers: Headers | undefined;
}

/**
 * Sends messages the way `useChat` does, through the ai SDK's own transport (so the request body is the real one),
 * and reads the answer with the SDK's own `readUIMessageStream` (so the protocol is checked by the library itself).
 */
export async function chatLikeUseChat(
  handler: ChatHandler,
  messages: UIMessage<ChatMetadata>[],
  options: { headers?: Record<string, string>; body?: object; regenerate?: string } = {},
): Promise<UiResult> {
  let headers: Headers | undefined;
  const transport = new DefaultChatTransport<UIMessage<ChatMetadata>>({
    api: 'http://proxy.test/api/chat',
    headers: { 'x-real-ip': TEST_IP, ...options.headers },
    ...(options.body ? { body: options.body } : {}),
    fetch: async (input, init) => {
      const res = await handler(new Request(input, init));
      headers = res.headers;
      return res;
    },
  });
  const stream = await transport.sendMessages({
    chatId: 'chat-1',
    messages,
    trigger: options.regenerate ? 'regenerate-message' : 'submit-message',
    // As useChat: the message regenerated, or else the last one (the assistant's, when it continues after tools).
    messageId: options.regenerate ?? messages.at(-1)?.id,
    abortSignal: undefined,
  });
  const errors: string[] = [];
  const chunks: UIMessageChunk[] = [];
  const recorded = stream.pipeThrough(
    new TransformStream<UIMessageChunk, UIMessageChunk>({
      transform(chunk, controller) {
        chunks.push(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  let last: UIMessage<ChatMetadata> | undefined;
  for await (const message of readUIMessageStream<UIMessage<ChatMetadata>>({
    stream: recorded,
    onError: (error) => errors.push(error instanceof Error ? error.message : String(error)),
  })) {
    last = message;
  }
  const text = (last?.parts ?? []).map((part) => (part.type === 'text' ? part.text : '')).join('');
  return { text, message: last, errors, chunks, headers };
}

export function userMessage(text: string, id = 'm1'): UIMessage<ChatMetadata> {
  return { id, role: 'user', parts: [{ type: 'text', text }] };
}
