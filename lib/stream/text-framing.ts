import type { Framing } from './reply-stream';
import { toolCallTracker } from './tool-calls';

/** Why a reply stopped early, as a last line a curl user can read. */
const STOPPED: Record<string, string> = {
  length: '\n\n[stopped: reply reached the length limit]\n',
  content_filter: "\n\n[stopped: the provider's content filter ended the reply]\n",
};

/**
 * Plain text tokens, for `curl -N`. Reasoning is left out unless the operator asks for it (`REASONING_IN_TEXT=on`),
 * then it comes first, between `[reasoning]` and `[/reasoning]` lines. A failure after the first token becomes a
 * clearly marked last line, and so does a reply cut at the length limit or by a content filter, and each tool call
 * (`[tool call: name {"a":1}]`).
 */
export function textFraming(showReasoning: boolean): Framing {
  let thinking = false;
  const stopThinking = () => {
    if (!thinking) return '';
    thinking = false;
    return '\n[/reasoning]\n\n';
  };
  const calls = toolCallTracker();
  return {
    start: () => '',
    toolCalls: (fragments) => {
      for (const fragment of fragments) calls.add(fragment);
      return '';
    },
    text: (delta) => (thinking ? stopThinking() + delta : delta),
    reasoning: (delta) => {
      if (!showReasoning) return '';
      if (thinking) return delta;
      thinking = true;
      return `[reasoning]\n${delta}`;
    },
    end: (reason) => stopThinking() + toolCallLines(calls.all()) + ((reason && STOPPED[reason]) || ''),
    error: (message) => `${stopThinking()}\n\n[error] ${message}\n`,
  };
}

/** A curl user cannot run a tool, but should see that the model asked for one rather than an empty reply. */
function toolCallLines(calls: readonly { name: string; arguments: string }[]): string {
  return calls.map((call) => `\n[tool call: ${call.name} ${call.arguments || '{}'}]\n`).join('');
}

export function textStreamHeaders(headers: Record<string, string>): Record<string, string> {
  // Not a spread: see lib/stream/respond.ts.
  return Object.assign({}, headers, {
    'content-type': 'text/plain; charset=utf-8',
    'x-accel-buffering': 'no',
  });
}

/** Plain text only when asked for it; everything else (browsers, `useChat`) gets the UI message stream. */
export function wantsPlainText(req: Request): boolean {
  const accept = req.headers.get('accept') ?? '';
  return /\btext\/plain\b/i.test(accept) && !/\btext\/event-stream\b/i.test(accept);
}
