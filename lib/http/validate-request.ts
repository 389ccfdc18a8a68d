import * as z from 'zod/mini';
import type { Config, RequestCaps } from '../config';
import { acceptsImages } from '../config/models';
import { ProxyError } from '../errors';
import { fitHistory, type HistoryLimits, operatorPromptTokens } from '../history/fit';
import { type CountTokens, lazyTokenCounter } from '../history/token-count';
import { hasImage } from '../parts/content';
import { type Issue, toUpstreamMessages } from '../parts/to-upstream';
import type { ChatMessage, ChatRequest } from '../types';
import { bodyTooLarge } from './read-body';

/** A request that passed every check, and what was left out of its conversation on the way. */
export interface ValidRequest {
  readonly request: ChatRequest;
  readonly history: HistoryReport;
  /** useChat's chat id (`id`): a running reply can be resumed under it (`RESUME=on`). */
  readonly chatId: string | undefined;
  /** useChat asked for another answer to the same conversation: a cached one would defeat the point. */
  readonly regenerate: boolean;
}

export interface HistoryReport {
  /** Parts dropped that were neither text nor UI-only: unanswered tool calls, old attachments, unknown types. */
  readonly droppedParts: number;
  /** The oldest messages left out so the conversation fits the caps (`HISTORY_OVERFLOW=trim`). */
  readonly trimmed: number;
}

/** `bodyBytes`: the body's size as read; its text (all but the attachments' URLs) must fit `MAX_BODY_BYTES`. */
export type ValidateChatRequest = (body: unknown, bodyBytes?: number) => Promise<ValidRequest>;

/** The ids useChat makes (nanoid-style), and what a `/api/chat/{chatId}/stream` path may carry. */
export const CHAT_ID = /^[\w.:-]{1,200}$/;

/**
 * Builds the validator once per config. Two body shapes are accepted: the one `useChat` sends
 * (`{ id, messages: [{ id, role, parts }], trigger, messageId }`, its parts turned into text by lib/parts) and the
 * curl-friendly `{ messages: [{ role, content }] }`. Unknown fields are dropped, so nothing unchecked reaches the
 * upstream. Then the conversation is fitted to the caps (lib/history), counted with `tokenCounter`.
 */
export function createRequestValidator(
  config: Config,
  tokenCounter: () => Promise<CountTokens> = lazyTokenCounter(undefined),
): ValidateChatRequest {
  const { caps } = config;
  const parse = createBodyParser(config);
  const limits: HistoryLimits = {
    maxMessages: caps.maxMessages,
    maxTotalChars: caps.maxTotalChars,
    maxInputTokens: config.history.maxInputTokens,
    overflow: config.history.overflow,
  };
  // The system prompt and the tools are the same on every request: count them once per counter (the estimate, then
  // the tokenizer).
  let prompt: { count?: CountTokens; tokens: number } = { tokens: 0 };
  const promptTokens = (count: CountTokens) => {
    if (prompt.count !== count)
      prompt = { count, tokens: operatorPromptTokens(config.systemPrompt, config.tools.declared, count) };
    return prompt.tokens;
  };

  return async (body, bodyBytes) => {
    refuseClientTools(body);
    if (bodyBytes !== undefined && bodyBytes - attachmentUrlBytes(body) > caps.maxBodyBytes) {
      throw bodyTooLarge(caps.maxBodyBytes);
    }
    const { messages, droppedParts, model, maxTokens, temperature, reasoningEffort, messageId, trigger, id } =
      await parse(body);
    refuseImagesWithoutVision(messages, model ?? config.defaultModel, config);
    const count = await tokenCounter();
    const fit = fitHistory(messages, promptTokens(count), limits, count);
    if (fit.refusal !== undefined) throw validationError([{ path: ['messages'], message: fit.refusal }]);
    const request: ChatRequest = {
      messages: fit.messages,
      model: model ?? config.defaultModel,
      maxTokens: maxTokens ?? caps.maxOutputTokens,
      temperature,
      reasoningEffort: reasoningEffort ?? config.models.reasoningEffort,
      // A regenerated reply keeps its id, and so does the reply to answered tool calls (the last message is then the
      // assistant's, which useChat names in `messageId`): it continues that message. Any other reply is a new one.
      messageId: trigger === 'regenerate-message' || messages.at(-1)?.role !== 'user' ? messageId : undefined,
    };
    const history = { droppedParts, trimmed: fit.trimmed };
    return { request, history, chatId: id, regenerate: trigger === 'regenerate-message' };
  };
}

/** Checks either body shape and turns its messages into the upstream's `{ role, content }`. */
function createBodyParser(config: Config) {
  const options = optionSchemas(config);
  const bodyError = { error: 'The body must be a JSON object' };
  const uiBody = z.object({ messages: messageList(uiMessage), ...options }, bodyError);
  const simpleBody = z.object({ messages: messageList(simpleMessage(config.caps)), ...options }, bodyError);
  type Parsed = Omit<z.output<typeof simpleBody>, 'messages'> & {
    readonly messages: readonly ChatMessage[];
    readonly droppedParts: number;
  };

  return async (body: unknown): Promise<Parsed> => {
    if (!looksLikeUseChat(body)) {
      const result = simpleBody.safeParse(body);
      if (!result.success) throw validationError(result.error.issues);
      // Not spreads: see lib/stream/respond.ts (once per request).
      return Object.assign({}, result.data, { droppedParts: 0 });
    }
    const result = uiBody.safeParse(body);
    if (!result.success) throw validationError(result.error.issues);
    const converted = await toUpstreamMessages(
      result.data.messages,
      config.caps.maxMessageChars,
      config.attachments,
      config.tools.names,
    );
    if (converted.issues) throw validationError(converted.issues);
    return Object.assign({}, result.data, {
      messages: converted.messages,
      droppedParts: converted.droppedParts,
    });
  };
}

const role = z.enum(['user', 'assistant'], {
  error: (issue) =>
    issue.input === 'system'
      ? 'system messages are not accepted: the server sets the system prompt'
      : 'must be "user" or "assistant"',
});

function simpleMessage(caps: RequestCaps) {
  const content = z.string({ error: 'must be a string' }).check(
    z.refine((s) => s.trim().length > 0, 'must not be empty'),
    z.refine(
      (s) => s.length <= caps.maxMessageChars,
      `is too long (at most ${caps.maxMessageChars} characters)`,
    ),
  );
  return z.object({ role, content });
}

/**
 * Only the envelope of a `useChat` message is checked here: a part is any object with a string `type` (useChat
 * grows new part types, and refusing one would break every later turn); lib/parts decides what each type becomes.
 */
const uiMessage = z.object({
  id: z.optional(z.string().check(z.maxLength(200))),
  role,
  parts: z.array(
    z.object(
      {
        type: z.string({ error: 'must be a string' }),
        text: z.optional(z.unknown()),
        // A `file` part's fields, checked by lib/parts/attachments.ts when the part is sent upstream.
        mediaType: z.optional(z.unknown()),
        url: z.optional(z.unknown()),
        filename: z.optional(z.unknown()),
        // A tool part's fields, read by lib/parts/tool-parts.ts for answered calls to declared tools.
        toolCallId: z.optional(z.unknown()),
        toolName: z.optional(z.unknown()),
        state: z.optional(z.unknown()),
        input: z.optional(z.unknown()),
        output: z.optional(z.unknown()),
        errorText: z.optional(z.unknown()),
      },
      { error: 'must be an object' },
    ),
    { error: 'must be an array of parts' },
  ),
});

function optionSchemas(config: Config) {
  const { maxOutputTokens } = config.caps;
  const efforts: readonly string[] = config.models.clientEfforts;
  return {
    model: z.optional(
      z
        .string({ error: 'must be a string' })
        .check(
          z.refine(
            (m) => config.allowedModels.includes(m),
            `must be one of: ${config.allowedModels.join(', ')}`,
          ),
        ),
    ),
    maxTokens: z.optional(
      z
        .number({ error: 'must be a number' })
        .check(
          z.refine(Number.isInteger, 'must be a whole number'),
          z.gte(1, 'must be at least 1'),
          z.lte(maxOutputTokens, `must be at most ${maxOutputTokens}`),
        ),
    ),
    temperature: z.optional(
      z.number({ error: 'must be a number' }).check(z.gte(0, 'must be >= 0'), z.lte(2, 'must be <= 2')),
    ),
    reasoningEffort: z.optional(
      z
        .enum(['minimal', 'low', 'medium', 'high'], { error: 'must be minimal, low, medium or high' })
        .check(
          z.refine(
            (e) => efforts.includes(e),
            efforts.length
              ? `must be one of: ${efforts.join(', ')}`
              : 'is chosen by the server here (REASONING_EFFORTS allows none)',
          ),
        ),
    ),
    trigger: z.optional(z.string()),
    // useChat's chat id: the key a running reply is resumed under (the same rule as ids in a resume URL).
    id: z.optional(z.string({ error: 'must be a string' }).check(z.regex(CHAT_ID, 'is not a valid id'))),
    // useChat sends the id of the assistant message it regenerates; the reply's `start` reuses it.
    messageId: z.optional(
      z.string({ error: 'must be a string' }).check(z.regex(/^[\w.:-]{1,200}$/, 'is not a valid id')),
    ),
  };
}

/**
 * The message count and total size are not capped here: past `MAX_MESSAGES` or `MAX_TOTAL_CHARS` a conversation is
 * trimmed or refused as `HISTORY_OVERFLOW` says, after its parts became text (lib/history). `MAX_BODY_BYTES` already
 * bounds how many messages can arrive.
 */
function messageList<T extends z.ZodMiniType>(message: T) {
  return z
    .array(message, { error: 'is required and must be an array of messages' })
    .check(z.minLength(1, 'must contain at least one message'));
}

/**
 * The bytes the attachments' URLs take in the body (every `file` part's, old ones included: useChat resends them).
 * The body may be larger than `MAX_BODY_BYTES` by these only, so attachments never make room for more text.
 */
function attachmentUrlBytes(body: unknown): number {
  if (typeof body !== 'object' || body === null || !('messages' in body) || !Array.isArray(body.messages))
    return 0;
  let bytes = 0;
  for (const message of body.messages as unknown[]) {
    const parts: unknown =
      typeof message === 'object' && message !== null && 'parts' in message && message.parts;
    if (!Array.isArray(parts)) continue;
    for (const part of parts as unknown[]) {
      if (typeof part !== 'object' || part === null || !('type' in part) || part.type !== 'file') continue;
      // The string's length, not its UTF-8 size: never more than the bytes it took, so text cannot hide in it.
      if ('url' in part && typeof part.url === 'string') bytes += part.url.length;
    }
  }
  return bytes;
}

/**
 * A client cannot add tools: they instruct the model as the system prompt does. Refused rather than dropped, so an
 * app that sends them learns at once that its tools will never be called.
 */
function refuseClientTools(body: unknown): void {
  if (typeof body !== 'object' || body === null || !('tools' in body)) return;
  throw new ProxyError(
    400,
    'tools_not_allowed',
    'Tools are declared by the server: remove `tools` from the request.',
    { param: 'tools' },
  );
}

/** A model declared without vision (`MODEL_OPTIONS`) gets a clear 400 here, not the provider's error later. */
function refuseImagesWithoutVision(messages: readonly ChatMessage[], model: string, config: Config): void {
  const index = messages.findIndex(hasImage);
  if (index < 0 || acceptsImages(model, config.models)) return;
  throw new ProxyError(400, 'images_not_supported', 'This assistant cannot read images.', {
    param: 'messages',
    detail: `model ${model} is declared "vision": false in MODEL_OPTIONS`,
  });
}

function looksLikeUseChat(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || !('messages' in body)) return false;
  const { messages } = body;
  return Array.isArray(messages) && messages.some((m) => typeof m === 'object' && m !== null && 'parts' in m);
}

function validationError(issues: readonly Issue[]): ProxyError {
  const shown = issues.slice(0, 3).map((issue) => {
    const path = formatPath(issue.path);
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : '';
  const first = issues[0];
  return new ProxyError(400, 'invalid_request', `Invalid request: ${shown.join('; ')}${more}.`, {
    param: first ? formatPath(first.path) || undefined : undefined,
  });
}

/** `['messages', 0, 'parts', 1, 'text']` → `messages[0].parts[1].text` */
function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    '',
  );
}
