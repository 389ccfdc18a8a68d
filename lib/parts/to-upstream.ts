import type { ChatMessage, ChatRole } from '../types';

/** A `useChat` message part after the envelope check: any object with a string `type`; only text is read. */
export interface UiPart {
  readonly type: string;
  readonly text?: unknown;
}

export interface UiMessage {
  readonly role: ChatRole;
  readonly parts: readonly UiPart[];
}

/** A problem with one field, as zod reports them, so both kinds format the same way. */
export interface Issue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export type Converted =
  | { readonly messages: ChatMessage[]; readonly droppedParts: number; readonly issues?: undefined }
  | { readonly issues: readonly Issue[] };

/**
 * Parts only the UI shows: step markers, sources, the app's own data, and the model's reasoning from earlier turns
 * (providers do not take it back as input, and it would only cost tokens). Dropped silently: they are expected.
 */
const UI_ONLY = new Set(['step-start', 'source-url', 'source-document', 'reasoning', 'reasoning-file']);

const FILE_REFUSED = 'only text parts are supported for now: file attachments are not (type "text")';
const NO_TEXT = 'must contain at least one text part that is not empty (it is the message being answered)';
const NO_MESSAGE: Issue = { path: ['messages'], message: 'must contain at least one message with text' };

type Fate = 'text' | 'ui-only' | 'dropped' | 'refused';

/**
 * What happens to a part. Tool parts are dropped until tools are forwarded upstream; unknown types (a newer useChat's)
 * are dropped rather than refused, since useChat resends the whole history and one refusal would break the chat for
 * good. A file is refused only in the message being answered, where the user expects the model to see it; in older
 * history it is dropped, so it cannot poison every later turn.
 */
function fateOf(type: string, answered: boolean): Fate {
  if (type === 'text') return 'text';
  if (UI_ONLY.has(type) || type.startsWith('data-')) return 'ui-only';
  if (type === 'file' && answered) return 'refused';
  return 'dropped';
}

/**
 * useChat's messages as the upstream's `{ role, content }`: the text parts of each message joined (with a blank line
 * where other parts stood between them), everything else dropped or refused as `fateOf` says. A message left without
 * text is dropped too (an assistant turn that was only a tool call), except the message being answered: the last
 * user message must have text.
 */
export function toUpstreamMessages(messages: readonly UiMessage[], maxMessageChars: number): Converted {
  const answered = messages.findLastIndex((m) => m.role === 'user');
  const out: ChatMessage[] = [];
  const issues: Issue[] = [];
  let droppedParts = 0;
  messages.forEach((message, index) => {
    const converted = joinText(message.parts, index, index === answered);
    droppedParts += converted.dropped;
    issues.push(...converted.issues);
    const { content } = converted;
    const at = ['messages', index, 'parts'];
    if (content.length > maxMessageChars) {
      issues.push({ path: at, message: `is too long (at most ${maxMessageChars} characters)` });
    } else if (content.trim()) {
      out.push({ role: message.role, content });
    } else if (index === answered) {
      issues.push({ path: at, message: NO_TEXT });
    }
  });
  if (issues.length) return { issues };
  if (!out.length) return { issues: [NO_MESSAGE] };
  return { messages: out, droppedParts };
}

function joinText(parts: readonly UiPart[], index: number, answered: boolean) {
  let content = '';
  let separated = false;
  let dropped = 0;
  const issues: Issue[] = [];
  parts.forEach((part, j) => {
    const at = ['messages', index, 'parts', j];
    const fate = fateOf(part.type, answered);
    if (fate !== 'text') {
      separated = true;
      if (fate === 'dropped') dropped++;
      if (fate === 'refused') issues.push({ path: [...at, 'type'], message: FILE_REFUSED });
      return;
    }
    if (typeof part.text !== 'string') {
      issues.push({ path: [...at, 'text'], message: 'must be a string' });
      return;
    }
    content += separated && content ? `\n\n${part.text}` : part.text;
    separated = false;
  });
  return { content, dropped, issues };
}
