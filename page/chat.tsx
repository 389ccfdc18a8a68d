import { useChat } from '@ai-sdk/react';
import type { UIMessage } from 'ai';
import { type FormEvent, useState } from 'react';
import { createRoot } from 'react-dom/client';
import type { ChatMetadata } from '../lib/types';

type Message = UIMessage<ChatMetadata>;

/**
 * The demo chat page: `useChat` from `@ai-sdk/react`, unchanged, talking to POST /api/chat on the same origin.
 * It doubles as the end-to-end proof that the proxy speaks the UI message stream protocol (tests/browser.test.ts).
 */
function Chat() {
  const { messages, sendMessage, status, error, stop } = useChat<Message>();
  const [input, setInput] = useState('');
  const busy = status === 'submitted' || status === 'streaming';

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!input.trim() || busy) return;
    void sendMessage({ text: input });
    setInput('');
  };

  return (
    <main>
      <h1>ai-chat-proxy</h1>
      <ol id="messages">
        {messages.map((message, index) => (
          <Bubble
            key={message.id}
            message={message}
            streaming={busy && message.role === 'assistant' && index === messages.length - 1}
          />
        ))}
      </ol>
      {error && (
        <p id="error" role="alert">
          {friendly(error.message)}
        </p>
      )}
      <form onSubmit={submit}>
        <input
          id="prompt"
          value={input}
          onChange={(e) => setInput(e.target.value)}
          placeholder="Say something"
          aria-label="Message"
        />
        <button id="send" type="submit" disabled={busy}>
          Send
        </button>
        {busy && (
          <button type="button" onClick={() => void stop()}>
            Stop
          </button>
        )}
      </form>
    </main>
  );
}

/** One message, its parts in order: reasoning as a collapsible block, text as it streams, then what it cost. */
function Bubble({ message, streaming }: { message: Message; streaming: boolean }) {
  const reasoningParts = message.parts.filter((part) => part.type === 'reasoning').length;
  const meta = message.role === 'assistant' && !streaming ? metaLine(message.metadata) : undefined;
  return (
    <li data-role={message.role} aria-busy={streaming || undefined}>
      <b>{message.role === 'user' ? 'You' : 'Assistant'}:</b>{' '}
      {message.parts.map((part, i) => {
        const key = `${message.id}-${i}`;
        if (part.type === 'text') {
          return (
            <span key={key} className="text">
              {part.text}
            </span>
          );
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
        return null;
      })}
      {meta && (
        <p className="meta">
          {meta.text}
          {meta.stopped && <span className="stopped"> · stopped: {meta.stopped}</span>}
        </p>
      )}
    </li>
  );
}

/** "o3-mini · 31 in · 87 out (52 reasoning)", and why the answer was cut short, if it was. */
function metaLine(metadata: ChatMetadata | undefined): { text: string; stopped?: string } | undefined {
  if (!metadata?.model && !metadata?.usage) return undefined;
  const pieces: string[] = [];
  if (metadata.model) pieces.push(metadata.model);
  const usage = metadata.usage;
  if (usage) {
    pieces.push(`${n(usage.promptTokens)} in`);
    const reasoning = usage.reasoningTokens ? ` (${n(usage.reasoningTokens)} reasoning)` : '';
    pieces.push(`${n(usage.completionTokens)} out${reasoning}`);
  }
  const stopped = STOPPED[metadata.finishReason ?? ''];
  return { text: pieces.join(' · '), ...(stopped && { stopped }) };
}

const STOPPED: Record<string, string> = { length: 'length limit', 'content-filter': 'content filter' };

const n = (value: number) => value.toLocaleString('en');
const count = (value: number, noun: string) => `${n(value)} ${noun}${value === 1 ? '' : 's'}`;

/** A refused request reaches useChat as the raw JSON body; show its friendly `message`. */
function friendly(message: string): string {
  try {
    const parsed = JSON.parse(message) as { error?: { message?: string } };
    return parsed.error?.message ?? message;
  } catch {
    return message;
  }
}

const root = document.getElementById('root');
if (root) createRoot(root).render(<Chat />);
