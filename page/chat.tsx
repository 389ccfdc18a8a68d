import { useChat } from '@ai-sdk/react';
import { type FormEvent, useState } from 'react';
import { createRoot } from 'react-dom/client';

/**
 * The demo chat page: `useChat` from `@ai-sdk/react`, unchanged, talking to POST /api/chat on the same origin.
 * It doubles as the end-to-end proof that the proxy speaks the UI message stream protocol (tests/browser.test.ts).
 */
function Chat() {
  const { messages, sendMessage, status, error, stop } = useChat();
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
        {messages.map((message) => (
          <li key={message.id} data-role={message.role}>
            <b>{message.role === 'user' ? 'You' : 'Assistant'}:</b>{' '}
            {message.parts.map((part) => (part.type === 'text' ? part.text : '')).join('')}
          </li>
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
