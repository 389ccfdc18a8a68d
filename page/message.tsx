import {
  type DynamicToolUIPart,
  type FileUIPart,
  getToolName,
  isToolUIPart,
  type ToolUIPart,
  type UIMessage,
} from 'ai';
import type { ReactNode } from 'react';
import type { ChatMetadata } from '../lib/types';
import { Markdown } from './markdown';

export type Message = UIMessage<ChatMetadata>;

interface BubbleProps {
  readonly message: Message;
  readonly streaming: boolean;
  /** The user pressed Stop on this reply. */
  readonly stopped: boolean;
  /** Buttons for what can be done with this message now (edit, regenerate). */
  readonly actions?: ReactNode;
}

/**
 * One message, its parts in order: reasoning as a collapsible block, answer text as markdown while it streams, then
 * what it cost. The user's own words stay plain text: they typed them, and rendering them would change them.
 */
export function Bubble({ message, streaming, stopped, actions }: BubbleProps) {
  const assistant = message.role === 'assistant';
  const reasoningParts = message.parts.filter((part) => part.type === 'reasoning').length;
  const meta = assistant && !streaming ? metaLine(message.metadata, stopped) : undefined;
  const files = message.parts.filter((part): part is FileUIPart => part.type === 'file');
  return (
    <li data-role={message.role} aria-busy={streaming || undefined}>
      <span className="sr-only">{assistant ? 'Assistant:' : 'You:'}</span>
      {message.parts.map((part, i) => {
        const key = `${message.id}-${i}`;
        if (part.type === 'text') {
          return assistant ? (
            <Markdown key={key} text={part.text} />
          ) : (
            <div key={key} className="text">
              {part.text}
            </div>
          );
        }
        // The images go together in one row, where the first of them is (useChat puts them before the text).
        if (part.type === 'file') {
          return part === files[0] ? <Files key={key} files={files} /> : null;
        }
        if (part.type === 'reasoning') {
          const thinking = part.state === 'streaming';
          const tokens = reasoningParts === 1 ? message.metadata?.usage?.reasoningTokens : undefined;
          return (
            // Open while the model thinks, so the thinking is seen; folded away once it is done.
            <details key={key} className="reasoning" open={thinking}>
              <summary>
                {thinking ? 'Thinking…' : tokens ? `Thought for ${count(tokens, 'token')}` : 'Reasoning'}
              </summary>
              <div>{part.text}</div>
            </details>
          );
        }
        if (isToolUIPart(part)) return <Tool key={key} part={part} />;
        return null;
      })}
      {(meta || actions) && (
        <div className="foot">
          {meta && (
            <p className="meta">
              {meta.text}
              {meta.stopped && (
                <span className="stopped">
                  {meta.text && ' · '}
                  {meta.stopped}
                </span>
              )}
            </p>
          )}
          {actions && <span className="actions">{actions}</span>}
        </div>
      )}
    </li>
  );
}

/** A tool call, compactly: "🔧 get_time({}) → 12:34:56", or where it is on its way there. */
function Tool({ part }: { readonly part: ToolUIPart | DynamicToolUIPart }) {
  const input = part.input === undefined ? '' : (JSON.stringify(part.input) ?? '');
  return (
    <p className="tool" data-state={part.state}>
      🔧 {getToolName(part)}({input}) <span className="result">{toolResult(part)}</span>
    </p>
  );
}

function toolResult(part: ToolUIPart | DynamicToolUIPart): string {
  switch (part.state) {
    case 'input-streaming':
      return '…';
    case 'input-available':
      return '· running…';
    case 'output-available':
      return `→ ${typeof part.output === 'string' ? part.output : JSON.stringify(part.output)}`;
    case 'output-error':
      return `✗ ${part.errorText}`;
    default:
      return `· ${part.state}`;
  }
}

/**
 * A message's attachments as thumbnails. Only an image held in the message itself (a data URL) is shown; a link is
 * just a link, so showing the conversation never makes the browser fetch an address from it.
 */
function Files({ files }: { readonly files: readonly FileUIPart[] }) {
  return (
    <div className="files">
      {files.map((file, i) => {
        // A message's parts never change order once sent, so their positions name them.
        const key = `${i}-${file.filename}`;
        const name = file.filename ?? 'image';
        return file.url.startsWith('data:image/') ? (
          <img key={key} src={file.url} alt={name} title={name} />
        ) : (
          <a key={key} href={file.url} target="_blank" rel="noopener noreferrer">
            {name}
          </a>
        );
      })}
    </div>
  );
}

/** "o3-mini · 31 in · 87 out (52 reasoning) · $0.0004", and why the answer was cut short, if it was. */
function metaLine(
  metadata: ChatMetadata | undefined,
  stoppedByUser: boolean,
): { text: string; stopped?: string } | undefined {
  const pieces: string[] = [];
  if (metadata?.model) pieces.push(metadata.model);
  const usage = metadata?.usage;
  if (usage) {
    pieces.push(`${n(usage.promptTokens)} in`);
    const reasoning = usage.reasoningTokens ? ` (${n(usage.reasoningTokens)} reasoning)` : '';
    pieces.push(`${n(usage.completionTokens)} out${reasoning}`);
  }
  // Absent when the model has no known price: then nothing is shown rather than a made-up $0.
  if (metadata?.costUsd !== undefined) pieces.push(usd(metadata.costUsd));
  // A reply the user stopped never gets its `finish`, so it has no usage and no finish reason to explain it.
  const limit = STOPPED[metadata?.finishReason ?? ''];
  const stopped = stoppedByUser ? 'stopped' : limit && `stopped: ${limit}`;
  if (!pieces.length && !stopped) return undefined;
  return { text: pieces.join(' · '), ...(stopped && { stopped }) };
}

const STOPPED: Record<string, string> = { length: 'length limit', 'content-filter': 'content filter' };

const n = (value: number) => value.toLocaleString('en');
/** "$0.0012", "$0.000015", "$1.25": two significant digits under a cent, cents above. */
function usd(value: number): string {
  if (value === 0) return '$0';
  if (value < 0.000001) return '<$0.000001';
  return value < 0.01
    ? `$${Number(value.toPrecision(2)).toFixed(8).replace(/0+$/, '')}`
    : `$${value.toFixed(2)}`;
}
const count = (value: number, noun: string) => `${n(value)} ${noun}${value === 1 ? '' : 's'}`;
