import type { ToolCall, ToolMessage } from '../types';

/** The fields of a useChat tool part (`tool-<name>`, or `dynamic-tool` with `toolName`), unchecked. */
export interface UiToolFields {
  readonly toolCallId?: unknown;
  readonly toolName?: unknown;
  readonly state?: unknown;
  readonly input?: unknown;
  readonly output?: unknown;
  readonly errorText?: unknown;
}

export function isToolPart(type: string): boolean {
  return type.startsWith('tool-') || type === 'dynamic-tool';
}

/** OpenAI's ids are short (`call_…`); anything else is not a call this proxy streamed. */
const CALL_ID = /^[\w.:-]{1,200}$/;

/**
 * A tool part the app answered (`output-available` or `output-error`), as the assistant's call and the tool's
 * message; `undefined` for anything else. Only calls to a declared tool (`names`) go back upstream: a tool the
 * operator has since removed, or one the client made up, is dropped like any other unknown part (useChat resends
 * the history, so refusing it would break the chat for good). Calls without an answer are dropped too: a
 * provider refuses a call that no tool message follows.
 */
export function answeredCall(
  part: UiToolFields & { readonly type: string },
  names: ReadonlySet<string>,
): { readonly call: ToolCall; readonly result: ToolMessage } | undefined {
  if (!isToolPart(part.type)) return undefined;
  const name = part.type === 'dynamic-tool' ? part.toolName : part.type.slice('tool-'.length);
  if (typeof name !== 'string' || !names.has(name)) return undefined;
  const { toolCallId: id, state } = part;
  if (typeof id !== 'string' || !CALL_ID.test(id)) return undefined;
  if (state !== 'output-available' && state !== 'output-error') return undefined;
  return {
    call: { id, name, arguments: JSON.stringify(part.input ?? {}) ?? '{}' },
    result: { role: 'tool', toolCallId: id, content: resultText(part, state) },
  };
}

/** What the model reads as the tool's answer: its output (a string as it is, anything else as JSON), or the error. */
function resultText(part: UiToolFields, state: 'output-available' | 'output-error'): string {
  if (state === 'output-error') {
    return typeof part.errorText === 'string' && part.errorText ? part.errorText : 'The tool failed.';
  }
  if (typeof part.output === 'string') return part.output;
  return JSON.stringify(part.output ?? null) ?? 'null';
}
