import type { ToolDeclaration } from '../config/tools';
import { PER_MESSAGE, PER_REPLY, promptTokenBound } from '../limits/token-bound';
import { attachmentTokens, textOf } from '../parts/content';
import type { ChatMessage } from '../types';
import type { CountTokens } from './token-count';

/** The caps a conversation must fit, and what to do when it does not (`HISTORY_OVERFLOW`). */
export interface HistoryLimits {
  readonly maxMessages: number;
  readonly maxTotalChars: number;
  /** The whole prompt: the system prompt and the tools, every message, and the format's own tokens around them. */
  readonly maxInputTokens: number;
  readonly overflow: 'trim' | 'refuse';
}

/** The conversation to send and how many of its oldest messages were left out, or why it cannot be sent. */
export type Fit =
  | { readonly messages: readonly ChatMessage[]; readonly trimmed: number; readonly refusal?: undefined }
  | { readonly refusal: string };

interface Tally {
  readonly messages: number;
  readonly chars: number;
  readonly tokens: number;
}

/**
 * Makes a conversation fit the caps. `trim` leaves out the oldest whole turns (a user message and the replies after
 * it), so the model never sees a reply without its question; the latest turn, the one being answered, always stays,
 * and so does what the operator adds, which is not part of `messages` (`systemTokens` counts the system prompt and
 * the tools, `operatorPromptTokens`; 0 for none). `refuse`
 * answers a conversation over any cap with a 400 naming it. Characters are summed first, so tokens are counted only
 * where the cheap caps already hold.
 */
export function fitHistory(
  messages: readonly ChatMessage[],
  systemTokens: number,
  limits: HistoryLimits,
  count: CountTokens,
): Fit {
  // Most conversations are far below the caps: when even the byte bound of their tokens fits (every token of a
  // byte-level BPE tokenizer is at least one byte), counting them would decide nothing, so the hot path skips it.
  if (fitsUncounted(messages, systemTokens, limits)) return { messages, trimmed: 0 };
  const base: Tally = { messages: 0, chars: 0, tokens: PER_REPLY + systemTokens };
  if (limits.overflow === 'refuse') {
    const whole = measure(messages, 0, messages.length, base, limits, count);
    const over = overCap(whole, limits);
    return over ? { refusal: refusal(over, whole, limits) } : { messages, trimmed: 0 };
  }
  return trimOldest(messages, base, limits, count);
}

function fitsUncounted(
  messages: readonly ChatMessage[],
  systemTokens: number,
  limits: HistoryLimits,
): boolean {
  if (messages.length > limits.maxMessages) return false;
  const chars = messages.reduce((n, m) => n + textOf(m).length, 0);
  return (
    chars <= limits.maxTotalChars && promptTokenBound({ messages }, 0) + systemTokens <= limits.maxInputTokens
  );
}

/**
 * The tokens the operator adds to every request: the system prompt (its text and its message frame) and the declared
 * tools (their JSON, which the upstream renders into the prompt, and a frame each).
 */
export function operatorPromptTokens(
  systemPrompt: string,
  tools: readonly ToolDeclaration[],
  count: CountTokens,
): number {
  const system = systemPrompt ? count(systemPrompt) + PER_MESSAGE : 0;
  return system + (tools.length ? count(JSON.stringify(tools)) + PER_MESSAGE * tools.length : 0);
}

function trimOldest(
  messages: readonly ChatMessage[],
  base: Tally,
  limits: HistoryLimits,
  count: CountTokens,
): Fit {
  const latest = turnStart(messages, messages.length - 1);
  let kept = measure(messages, latest, messages.length, base, limits, count);
  const over = overCap(kept, limits);
  if (over) {
    return {
      refusal: `the last message does not fit, even with every earlier one left out (${limit(over, kept, limits)})`,
    };
  }
  let keep = latest;
  while (keep > 0) {
    const start = turnStart(messages, keep - 1);
    const next = measure(messages, start, keep, kept, limits, count);
    if (overCap(next, limits)) break;
    kept = next;
    keep = start;
  }
  return { messages: keep ? messages.slice(keep) : messages, trimmed: keep };
}

/** Where the turn holding `index` begins: at the user message before it (older assistant-only messages: at 0). */
function turnStart(messages: readonly ChatMessage[], index: number): number {
  for (let i = index; i > 0; i--) if (messages[i]?.role === 'user') return i;
  return 0;
}

/**
 * `tally` plus messages `from` to `to`. Tokens are left uncounted once a character cap is over: it cannot fit.
 * Characters are the text's only (attachments have their own caps); tokens add each attachment's estimate.
 */
function measure(
  messages: readonly ChatMessage[],
  from: number,
  to: number,
  tally: Tally,
  limits: HistoryLimits,
  count: CountTokens,
): Tally {
  let chars = tally.chars;
  for (let i = from; i < to; i++) {
    const message = messages[i];
    if (message) chars += textOf(message).length;
  }
  const next = { messages: tally.messages + (to - from), chars, tokens: tally.tokens };
  if (next.messages > limits.maxMessages || chars > limits.maxTotalChars) return next;
  let tokens = tally.tokens;
  for (let i = from; i < to; i++) {
    const message = messages[i];
    if (message) tokens += count(textOf(message)) + attachmentTokens(message) + PER_MESSAGE;
  }
  next.tokens = tokens;
  return next;
}

type Cap = 'messages' | 'chars' | 'tokens';

function overCap(tally: Tally, limits: HistoryLimits): Cap | undefined {
  if (tally.messages > limits.maxMessages) return 'messages';
  if (tally.chars > limits.maxTotalChars) return 'chars';
  if (tally.tokens > limits.maxInputTokens) return 'tokens';
  return undefined;
}

function limit(cap: Cap, tally: Tally, limits: HistoryLimits): string {
  if (cap === 'messages') return `at most ${limits.maxMessages} messages`;
  if (cap === 'chars') return `at most ${limits.maxTotalChars} characters across the conversation`;
  return `at most ${limits.maxInputTokens} tokens with the system prompt; about ${tally.tokens} here`;
}

/** `HISTORY_OVERFLOW=refuse`: the messages the caps have always had. */
function refusal(cap: Cap, tally: Tally, limits: HistoryLimits): string {
  if (cap === 'messages') return `has too many messages (at most ${limits.maxMessages})`;
  return `are too long in total (${limit(cap, tally, limits)})`;
}
