import type { ToolCallFragment } from '../types';

/** A tool call as it builds up from its fragments. */
export interface PendingCall {
  readonly id: string;
  readonly name: string;
  arguments: string;
}

/** What one fragment adds: a new call (its first fragment), and a piece of arguments, if any. */
export interface CallStep {
  readonly call: PendingCall;
  readonly started: boolean;
  readonly argumentsDelta: string | undefined;
}

/**
 * Gathers tool-call fragments by `index`, so each framing sees a call start once and its arguments piece by piece,
 * and gets every call whole at the end. A provider that leaves out the id gets one: the app answers by it.
 */
export function toolCallTracker() {
  const calls = new Map<number, PendingCall>();
  return {
    add(fragment: ToolCallFragment): CallStep {
      let call = calls.get(fragment.index);
      const started = call === undefined;
      if (!call) {
        call = {
          id: fragment.id ?? `call-${fragment.index}`,
          name: fragment.name ?? 'unknown',
          arguments: '',
        };
        calls.set(fragment.index, call);
      }
      if (fragment.arguments) call.arguments += fragment.arguments;
      return { call, started, argumentsDelta: fragment.arguments };
    },
    all: (): PendingCall[] => [...calls.values()],
  };
}

/** A call's arguments as JSON: an empty string means none, which models send for tools without parameters. */
export function parseArguments(text: string): { input: unknown } | { error: string } {
  if (!text.trim()) return { input: {} };
  try {
    return { input: JSON.parse(text) };
  } catch {
    return { error: 'The model sent tool arguments that are not valid JSON.' };
  }
}
