import { type ChatStatus, DefaultChatTransport, type FileUIPart, generateId } from 'ai';
import { useEffect } from 'react';
import type { Message } from './message';

/**
 * The conversation as the page keeps it across reloads, in localStorage: useChat's chat id (the key a running reply
 * is resumed under, `RESUME=on`) and the messages as they stood when nothing was streaming.
 */
export interface Session {
  readonly id: string;
  readonly messages: Message[];
  /** The replies the user stopped: nothing in a message itself tells a stopped reply from one that ended. */
  readonly stopped: readonly string[];
}

/** One conversation per page address. */
const KEY = `ai-chat-proxy:chat:${location.pathname}`;

export const newSession = (): Session => ({ id: generateId(), messages: [], stopped: [] });

/** The saved conversation, or a new one where there is none (or storage is off, or what it holds is not ours). */
export function loadSession(): Session {
  try {
    const saved: unknown = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    if (isSession(saved)) return saved;
  } catch {
    // Storage blocked, or not JSON: start afresh.
  }
  return newSession();
}

/**
 * Saves the conversation whenever nothing is streaming: a send (the user's message is kept at once, so after a reload
 * the resumed reply becomes its answer), and the end of a reply, a stop or an error. Never a reply halfway through:
 * a reload would show it cut, and the resumed stream replays it whole.
 */
export function useSaved(id: string, messages: Message[], status: ChatStatus, stopped: ReadonlySet<string>) {
  useEffect(() => {
    if (status === 'streaming') return;
    save({ id, messages, stopped: messages.filter((m) => stopped.has(m.id)).map((m) => m.id) });
  }, [id, messages, status, stopped]);
}

function save(session: Session): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // Most likely over the quota (a few MB): images are what is big. Keep the words, and say where an image was.
    try {
      localStorage.setItem(
        KEY,
        JSON.stringify({ ...session, messages: session.messages.map(withoutImages) }),
      );
    } catch {
      // Storage is off or full even so: the conversation lives as long as the page does, as before.
    }
  }
}

function withoutImages(message: Message): Message {
  if (!message.parts.some((part) => part.type === 'file')) return message;
  const placeholder = (part: FileUIPart) => ({
    type: 'text' as const,
    text: `[${part.filename ?? 'an image'}: too big to keep after a reload] `,
  });
  return {
    ...message,
    parts: message.parts.map((part) => (part.type === 'file' ? placeholder(part) : part)),
  };
}

function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false;
  const { id, messages, stopped } = value as Record<string, unknown>;
  return (
    typeof id === 'string' &&
    /^[\w.:-]{1,200}$/.test(id) &&
    Array.isArray(messages) &&
    messages.every(isMessage) &&
    Array.isArray(stopped) &&
    stopped.every((s) => typeof s === 'string')
  );
}

function isMessage(value: unknown): value is Message {
  if (typeof value !== 'object' || value === null) return false;
  const { id, role, parts } = value as Record<string, unknown>;
  return (
    typeof id === 'string' &&
    (role === 'user' || role === 'assistant') &&
    Array.isArray(parts) &&
    parts.every((part) => typeof part === 'object' && part !== null && typeof part.type === 'string')
  );
}

/**
 * `DELETE /api/chat/{chatId}/stream`: stops the chat's reply on the server, which with `RESUME=on` goes on when its
 * connection drops. `keepalive`, so a stop right before leaving the page still arrives.
 */
export function stopOnServer(chatId: string): void {
  const url = `/api/chat/${encodeURIComponent(chatId)}/stream`;
  fetch(url, { method: 'DELETE', keepalive: true }).catch(() => {}); // nothing to stop, or unreachable: no harm
}

/**
 * useChat's usual transport, telling the page when a resume (its only GET: `/api/chat/{chatId}/stream`) has been
 * answered: until then a reloaded question may still have its reply on the way, and the page shows it is waiting.
 */
export function resumeWatchingTransport(onResumeAnswered: () => void): DefaultChatTransport<Message> {
  return new DefaultChatTransport<Message>({
    // Hear the place in line (`data-queue` parts) while a request waits for the upstream's capacity.
    headers: { 'x-chat-queue-updates': 'on' },
    fetch: (input, init) => {
      const response = fetch(input, init);
      if (init?.method === 'GET') response.then(onResumeAnswered, onResumeAnswered);
      return response;
    },
  });
}
