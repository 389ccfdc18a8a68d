import { useChat } from '@ai-sdk/react';
import { type FileUIPart, lastAssistantMessageIsCompleteWithToolCalls } from 'ai';
import {
  type ClipboardEvent,
  type DragEvent,
  type FormEvent,
  type KeyboardEvent,
  useRef,
  useState,
} from 'react';
import { createRoot } from 'react-dom/client';
import type { PlaceInLine } from '../lib/types';
import { IMAGE_TYPES, useAttachments } from './attachments';
import { useFollow, useModels } from './hooks';
import { Bubble, type Message } from './message';
import { Previews } from './previews';
import { loadSession, newSession, resumeWatchingTransport, stopOnServer, useSaved } from './session';
import { answerToolCall } from './tools';

/**
 * The demo chat page: `useChat` from `@ai-sdk/react`, unchanged, talking to POST /api/chat on the same origin.
 * It doubles as the end-to-end proof that the proxy speaks the UI message stream protocol (tests/browser.test.ts).
 * The conversation survives a reload (page/session.ts); with `RESUME=on`, so does a reply still being written.
 */
function Chat() {
  const [session, setSession] = useState(loadSession);
  const models = useModels();
  // A chat with no message yet has no reply to resume: asking would cost a request of the caller's rate limit.
  const [begun, setBegun] = useState(session.messages.length > 0);
  // Loaded with messages, the chat may have a reply running on the server, until resume is known to be off or the
  // resume has been answered.
  const [checking, setChecking] = useState(session.messages.length > 0);
  const [transport] = useState(() => resumeWatchingTransport(() => setChecking(false)));
  const [place, setPlace] = useState<PlaceInLine>();
  const chat = useChat<Message>({
    id: session.id,
    messages: session.messages,
    transport,
    // useChat reads `resume` in an effect, not at construction: set once the server says RESUME=on, it asks
    // GET /api/chat/{id}/stream for the reply the last load left running (and again when a tab comes back after its
    // connection dropped). The saved messages show at once either way.
    resume: models?.resume === true && begun,
    // A client-side tool (page/tools.ts) answers in the browser; once every call has its answer, the conversation
    // goes back to the model on its own, and the model's reply to the answer continues the same message.
    onToolCall: ({ toolCall }): void => answerToolCall(toolCall, chat.addToolOutput),
    // While the request waits for the upstream's capacity, the proxy tells where it stands (transient parts).
    onData: (part) => {
      if (part.type === 'data-queue') setPlace(part.data as PlaceInLine);
    },
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
  });
  const { messages, sendMessage, regenerate, setMessages, status, error, stop, clearError } = chat;
  // A place in line only means something until the reply starts (or the request ends).
  if (place && status !== 'submitted') setPlace(undefined);
  const [input, setInput] = useState('');
  const [stopped, setStopped] = useState<ReadonlySet<string>>(() => new Set(session.stopped));
  const [chosen, setChosen] = useState<string>();
  const prompt = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const attachments = useAttachments();
  const [dragging, setDragging] = useState(false);
  const follow = useFollow();
  useSaved(chat.id, messages, status, stopped);
  const busy = status === 'submitted' || status === 'streaming';
  const last = messages.at(-1);
  // Loaded with the user's message last: until it is known whether its reply is on the way, the page shows it is
  // waiting, not buttons that would vanish a moment later. Then, if none comes, the question can be asked again.
  const settling = checking && !busy && last?.role === 'user' && models !== null && models?.resume !== false;
  const unanswered = !busy && !settling && status !== 'error' && last?.role === 'user';
  // With RESUME=on a dropped connection no longer stops the reply, so Stop tells the server; also where the page
  // cannot know (no /api/models: the static page on Vercel), since a reply left running there is paid for.
  const stopsOnServer = models?.resume !== false;
  const lastUser = messages.findLastIndex((m) => m.role === 'user');
  // The last message is the user's and there was an error: the request was refused (a 400, a 429) or failed before
  // a reply began. Left in place it would be sent again under every later message and fail each of them too.
  const refused = status === 'error' && last?.role === 'user' ? last : undefined;
  // The model travels in the body only when there is a choice: without one the proxy picks its default.
  const model = models && models.models.length > 1 ? (chosen ?? models.default) : undefined;
  const options = model ? { body: { model } } : undefined;

  const send = () => {
    // A message may be images alone; then it has no text part at all rather than an empty one.
    if ((!input.trim() && !attachments.list.length) || busy) return;
    if (refused) drop(refused);
    setBegun(true);
    follow();
    const files = attachments.take();
    void sendMessage(input.trim() ? { text: input, files } : { files }, options);
    setInput('');
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    send();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends, Shift+Enter is a new line; not while an input method is still composing a character.
    if (event.key !== 'Enter' || event.shiftKey || event.nativeEvent.isComposing) return;
    event.preventDefault();
    send();
  };
  const onPaste = (event: ClipboardEvent<HTMLTextAreaElement>) => {
    const { files, types } = event.clipboardData;
    if (!files.length) return;
    attachments.add(files);
    // Copied from a document, an image comes with its words as text: those are still pasted as usual.
    if (!types.includes('text/plain')) event.preventDefault();
  };
  const onDragOver = (event: DragEvent<HTMLFormElement>) => {
    // Only files: dragging selected text into the textarea works as before.
    if (!event.dataTransfer.types.includes('Files')) return;
    event.preventDefault();
    setDragging(true);
  };
  const onDragLeave = (event: DragEvent<HTMLFormElement>) => {
    // Leaving the form for one of its own children is not leaving it.
    if (event.relatedTarget instanceof Node && event.currentTarget.contains(event.relatedTarget)) return;
    setDragging(false);
  };
  const onDrop = (event: DragEvent<HTMLFormElement>) => {
    if (!event.dataTransfer.files.length) return;
    event.preventDefault(); // or the browser leaves the page to show the file
    setDragging(false);
    attachments.add(event.dataTransfer.files);
    prompt.current?.focus();
  };
  /** Takes a message (and whatever answered it) out of the conversation, so it is never sent again. */
  const drop = (message: Message) => {
    setMessages((current) => {
      const index = current.findIndex((m) => m.id === message.id);
      return index < 0 ? current : current.slice(0, index);
    });
    clearError();
  };
  /** Edit: the message goes back into the input, and out of the conversation until it is sent again. */
  const edit = (message: Message) => {
    drop(message);
    setInput(message.parts.map((part) => (part.type === 'text' ? part.text : '')).join(''));
    attachments.restore(message.parts.filter((part): part is FileUIPart => part.type === 'file'));
    prompt.current?.focus();
  };
  const retry = () => {
    follow();
    void regenerate(options);
  };
  const halt = () => {
    // Marked here, since nothing in the message itself can tell a stopped reply from one that ended.
    if (last?.role === 'assistant') setStopped((ids) => new Set(ids).add(last.id));
    void stop();
    if (stopsOnServer) stopOnServer(chat.id);
  };
  const newChat = () => {
    // A new id makes a new chat in useChat, which stops the old one's request; the server's reply needs telling.
    if (busy && stopsOnServer) stopOnServer(chat.id);
    setSession(newSession());
    setBegun(false);
    setChecking(false);
    setStopped(new Set());
    prompt.current?.focus();
  };

  return (
    <main>
      <header>
        <h1>ai-chat-proxy</h1>
        {model && models && (
          <select id="model" aria-label="Model" value={model} onChange={(e) => setChosen(e.target.value)}>
            {models.models.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        )}
        <button id="new-chat" type="button" onClick={newChat} disabled={!messages.length && !error}>
          New chat
        </button>
      </header>
      {!messages.length && !error && (
        <p className="hint">
          Enter sends, Shift+Enter starts a new line.
          <br />
          Paste or drop images to attach them.
        </p>
      )}
      <ol id="messages">
        {messages.map((message, index) => {
          const isLast = index === messages.length - 1;
          // Only the last exchange can be changed: editing an earlier message would rewrite what came after it.
          const canAct =
            !busy && !refused && !settling && (message.role === 'user' ? index === lastUser : isLast);
          return (
            <Bubble
              key={message.id}
              message={message}
              streaming={busy && isLast && message.role === 'assistant'}
              stopped={stopped.has(message.id)}
              actions={
                canAct &&
                (message.role === 'user' ? (
                  <>
                    <button type="button" onClick={() => edit(message)}>
                      Edit
                    </button>
                    {unanswered && isLast && (
                      <button type="button" className="retry" onClick={retry}>
                        Retry
                      </button>
                    )}
                  </>
                ) : (
                  <button type="button" className="regenerate" onClick={retry}>
                    Regenerate
                  </button>
                ))
              }
            />
          );
        })}
        {(status === 'submitted' || settling) && (
          <li className="pending" aria-label="Waiting for the answer">
            {place ? inLine(place) : '…'}
          </li>
        )}
      </ol>
      {error && (
        <div className="error">
          <p id="error" role="alert">
            {friendly(error.message)}
          </p>
          <span>
            {refused && (
              <>
                <button type="button" onClick={() => edit(refused)}>
                  Edit
                </button>{' '}
                <button type="button" onClick={() => drop(refused)}>
                  Remove
                </button>{' '}
              </>
            )}
            <button type="button" onClick={retry}>
              Retry
            </button>
          </span>
        </div>
      )}
      <form
        onSubmit={submit}
        onDragOver={onDragOver}
        onDragLeave={onDragLeave}
        onDrop={onDrop}
        className={dragging ? 'dragging' : undefined}
      >
        <Previews attachments={attachments} />
        <div className="row">
          <input
            id="attach-input"
            ref={picker}
            type="file"
            accept={IMAGE_TYPES.join(',')}
            multiple
            hidden
            onChange={(e) => {
              if (e.target.files) attachments.add(e.target.files);
              e.target.value = ''; // so picking the same image again, after removing it, is a change
            }}
          />
          <button
            id="attach"
            type="button"
            onClick={() => picker.current?.click()}
            aria-label="Attach images"
            title="Attach images (or paste or drop them here)"
          >
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <path
                d="M21 11.5 12.6 19.9a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6L15.2 7"
                fill="none"
                stroke="currentColor"
                strokeWidth="1.8"
                strokeLinecap="round"
                strokeLinejoin="round"
              />
            </svg>
          </button>
          <textarea
            id="prompt"
            ref={prompt}
            value={input}
            rows={Math.min(8, input.split('\n').length)}
            onChange={(e) => setInput(e.target.value)}
            onKeyDown={onKeyDown}
            onPaste={onPaste}
            placeholder="Say something"
            aria-label="Message"
          />
          {busy ? (
            <button id="stop" type="button" onClick={halt}>
              Stop
            </button>
          ) : null}
          <button id="send" type="submit" disabled={busy}>
            Send
          </button>
        </div>
      </form>
    </main>
  );
}

/** "You're 3rd in line… (about 8 s)": where a waiting request stands, as the proxy last said. */
function inLine({ position, etaMs }: PlaceInLine): string {
  const eta = etaMs === null ? '' : ` (about ${Math.max(1, Math.round(etaMs / 1000))} s)`;
  return `You're ${ordinal(position)} in line…${eta}`;
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** A refused request reaches useChat as the raw JSON body; show its friendly `message`. */
function friendly(message: string): string {
  try {
    const parsed = JSON.parse(message) as { error?: { message?: string } };
    return parsed.error?.message ?? message;
  } catch {
    // fetch's own words for a network failure differ by browser and say little; this says what to do.
    return /failed to fetch|networkerror|load failed/i.test(message)
      ? 'The server could not be reached. Check the connection and try again.'
      : message;
  }
}

const root = document.getElementById('root');
if (root) createRoot(root).render(<Chat />);
