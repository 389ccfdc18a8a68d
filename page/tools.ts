import type { ChatAddToolOutputFunction, ChatOnToolCallCallback } from 'ai';
import type { Message } from './message';

type ToolCall = Parameters<ChatOnToolCallCallback<Message>>[0]['toolCall'];

/**
 * The page's own client-side tools, by name: what runs when the model calls one. The operator declares them to the
 * model (`TOOLS`); the page answers only these, and any other call with an `output-error`, so the model hears back.
 */
const CLIENT_TOOLS: Record<string, (input: unknown) => unknown> = {
  /** The browser's local time: something only the client knows. */
  get_time: () => new Date().toLocaleTimeString(),
};

/** useChat's `onToolCall`: answers the call with `addToolOutput`, which it must not await (useChat's own rule). */
export function answerToolCall(toolCall: ToolCall, addToolOutput: ChatAddToolOutputFunction<Message>): void {
  const { toolName: tool, toolCallId } = toolCall;
  const run = Object.hasOwn(CLIENT_TOOLS, tool) ? CLIENT_TOOLS[tool] : undefined;
  if (!run) {
    void addToolOutput({
      tool,
      toolCallId,
      state: 'output-error',
      errorText: `This page has no tool "${tool}".`,
    });
    return;
  }
  try {
    void addToolOutput({ tool, toolCallId, output: run(toolCall.input) });
  } catch (error) {
    const errorText = error instanceof Error ? error.message : String(error);
    void addToolOutput({ tool, toolCallId, state: 'output-error', errorText });
  }
}
