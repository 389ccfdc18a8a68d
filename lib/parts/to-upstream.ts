import type { AttachmentsConfig } from '../config/attachments';
import type { ChatMessage, ChatRole, ContentPart, ToolCall, ToolMessage } from '../types';
import { checkAttachment, type UiFilePart } from './attachments';
import { answeredCall, type UiToolFields } from './tool-parts';

/**
 * A `useChat` message part after the envelope check: any object with a string `type`; text parts, `file` parts
 * (`mediaType`, `url`, `filename`) and answered tool parts (lib/parts/tool-parts.ts) are read.
 */
export interface UiPart extends UiFilePart, UiToolFields {
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

const NO_TEXT =
  'must contain at least one text part that is not empty, or an attachment (it is the message being answered)';
const NO_MESSAGE: Issue = { path: ['messages'], message: 'must contain at least one message with text' };

type Fate = 'text' | 'ui-only' | 'dropped' | 'attachment';

/**
 * What happens to a part. Tool parts are dropped here: an assistant message with answered calls to declared tools
 * is converted by `withToolCalls` instead, and other tool parts are dropped there too. Unknown types (a newer useChat's)
 * are dropped rather than refused, since useChat resends the whole history and one refusal would break the chat for
 * good. A file is checked and sent only in the message being answered, where the user expects the model to see it.
 * In older history it is dropped (and counted): the model already answered about it, sending it again would cost
 * its tokens on every later turn, and a file the operator's settings no longer accept cannot break the chat.
 */
function fateOf(type: string, answered: boolean): Fate {
  if (type === 'text') return 'text';
  if (UI_ONLY.has(type) || type.startsWith('data-')) return 'ui-only';
  if (type === 'file' && answered) return 'attachment';
  return 'dropped';
}

/**
 * useChat's messages as the upstream's `{ role, content }`: the text parts of each message joined (with a blank line
 * where other parts stood between them), everything else dropped or checked as `fateOf` says. The attachments of the
 * message being answered follow its text as OpenAI content parts (lib/parts/attachments.ts checks each). A message
 * left without text is dropped too (an assistant turn that was only a tool call), except the message being answered:
 * the last user message must have text or an attachment.
 */
export async function toUpstreamMessages(
  messages: readonly UiMessage[],
  maxMessageChars: number,
  attachments: AttachmentsConfig,
  toolNames: ReadonlySet<string> = new Set(),
): Promise<Converted> {
  const answered = messages.findLastIndex((m) => m.role === 'user');
  const out: ChatMessage[] = [];
  const issues: Issue[] = [];
  let droppedParts = 0;
  for (const [index, message] of messages.entries()) {
    if (message.role === 'assistant' && message.parts.some((part) => answeredCall(part, toolNames))) {
      const steps = withToolCalls(message.parts, index, maxMessageChars, toolNames);
      out.push(...steps.messages);
      issues.push(...steps.issues);
      droppedParts += steps.dropped;
      continue;
    }
    const converted = joinText(message.parts, index, index === answered);
    droppedParts += converted.dropped;
    issues.push(...converted.issues);
    const files = await convertAttachments(converted.files, index, attachments, issues);
    const { content } = converted;
    const at = ['messages', index, 'parts'];
    if (content.length > maxMessageChars) {
      issues.push({ path: at, message: `is too long (at most ${maxMessageChars} characters)` });
    } else if (content.trim() || files.length) {
      out.push(messageOf(message.role, content, files));
    } else if (index === answered) {
      issues.push({ path: at, message: NO_TEXT });
    }
  }
  if (issues.length) return { issues };
  if (!out.length) return { issues: [NO_MESSAGE] };
  return { messages: out, droppedParts };
}

/** A message without attachments stays a plain string; with them, its text comes first, then each attachment. */
function messageOf(role: ChatRole, text: string, files: readonly ContentPart[]): ChatMessage {
  if (role === 'assistant' || !files.length) return { role, content: text };
  return { role, content: text.trim() ? [{ type: 'text', text }, ...files] : files };
}

/**
 * An assistant message that called tools the app answered, as the upstream wants it: each step's text with its calls
 * (`tool_calls`), then one `tool` message per call. A useChat message holds every step of a tool loop (text, calls,
 * more text after the outputs), so text after a call starts a new assistant message. The outputs count toward the
 * caps like any other text, and each must fit `MAX_MESSAGE_CHARS`.
 */
function withToolCalls(
  parts: readonly UiPart[],
  index: number,
  maxMessageChars: number,
  toolNames: ReadonlySet<string>,
) {
  const messages: ChatMessage[] = [];
  const issues: Issue[] = [];
  let dropped = 0;
  let text = '';
  let calls: ToolCall[] = [];
  let results: ToolMessage[] = [];
  const flush = () => {
    if (text.length > maxMessageChars) {
      issues.push({ path: ['messages', index, 'parts'], message: tooLong(maxMessageChars) });
    } else if (text.trim() || calls.length) {
      messages.push({ role: 'assistant', content: text, ...(calls.length > 0 && { toolCalls: calls }) });
      messages.push(...results);
    }
    text = '';
    calls = [];
    results = [];
  };
  parts.forEach((part, j) => {
    const at = ['messages', index, 'parts', j];
    const answered = answeredCall(part, toolNames);
    if (answered) {
      if (answered.result.content.length > maxMessageChars) {
        issues.push({ path: [...at, 'output'], message: tooLong(maxMessageChars) });
      }
      calls.push(answered.call);
      results.push(answered.result);
    } else if (part.type !== 'text') {
      if (fateOf(part.type, false) === 'dropped') dropped++;
    } else if (typeof part.text !== 'string') {
      issues.push({ path: [...at, 'text'], message: 'must be a string' });
    } else if (part.text) {
      if (calls.length) flush();
      text += text ? `\n\n${part.text}` : part.text;
    }
  });
  flush();
  return { messages, issues, dropped };
}

const tooLong = (max: number) => `is too long (at most ${max} characters)`;

interface FileAt {
  readonly part: UiPart;
  readonly index: number;
}

/**
 * The answered message's attachments, checked one by one; problems go to `issues`, naming the part. The count is
 * checked first, so a request over `MAX_ATTACHMENTS` costs no decoding.
 */
async function convertAttachments(
  files: readonly FileAt[],
  index: number,
  config: AttachmentsConfig,
  issues: Issue[],
): Promise<ContentPart[]> {
  const out: ContentPart[] = [];
  const over = files[config.maxFiles];
  if (over) {
    const message = `is one attachment too many (at most ${config.maxFiles} per message, MAX_ATTACHMENTS)`;
    issues.push({ path: ['messages', index, 'parts', over.index], message });
    return out;
  }
  for (const file of files) {
    const checked = await checkAttachment(file.part, config);
    if (checked.field === undefined) out.push(checked.part);
    else
      issues.push({
        path: ['messages', index, 'parts', file.index, checked.field],
        message: checked.message,
      });
  }
  return out;
}

function joinText(parts: readonly UiPart[], index: number, answered: boolean) {
  let content = '';
  let separated = false;
  let dropped = 0;
  const issues: Issue[] = [];
  const files: FileAt[] = [];
  parts.forEach((part, j) => {
    const at = ['messages', index, 'parts', j];
    const fate = fateOf(part.type, answered);
    if (fate !== 'text') {
      separated = true;
      if (fate === 'dropped') dropped++;
      if (fate === 'attachment') files.push({ part, index: j });
      return;
    }
    if (typeof part.text !== 'string') {
      issues.push({ path: [...at, 'text'], message: 'must be a string' });
      return;
    }
    content += separated && content ? `\n\n${part.text}` : part.text;
    separated = false;
  });
  return { content, dropped, issues, files };
}
