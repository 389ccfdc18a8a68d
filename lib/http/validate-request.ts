import * as z from 'zod/mini';
import type { Config, RequestCaps } from '../config';
import { ProxyError } from '../errors';
import type { ChatMessage, ChatRequest, ChatRole } from '../types';

export type ValidateChatRequest = (body: unknown) => ChatRequest;

/**
 * Builds the validator once per config. Two body shapes are accepted: the one `useChat` sends
 * (`{ id, messages: [{ id, role, parts: [{ type: 'text', text }] }], trigger, messageId }`) and the curl-friendly
 * `{ messages: [{ role, content }] }`. Unknown fields are dropped, so nothing unchecked reaches the upstream.
 */
export function createRequestValidator(config: Config): ValidateChatRequest {
  const { caps } = config;
  const { simpleMessage, uiMessage } = messageSchemas(caps);
  const options = optionSchemas(config);
  const bodyError = { error: 'The body must be a JSON object' };
  const uiBody = z.object({ messages: messageList(uiMessage, caps), ...options }, bodyError);
  const simpleBody = z.object({ messages: messageList(simpleMessage, caps), ...options }, bodyError);

  return (body) => {
    const schema = looksLikeUseChat(body) ? uiBody : simpleBody;
    const result = schema.safeParse(body);
    if (!result.success) throw validationError(result.error);
    const { messages, model, maxTokens, temperature, reasoningEffort, messageId, trigger } = result.data;
    return {
      messages,
      model: model ?? config.defaultModel,
      maxTokens: maxTokens ?? caps.maxOutputTokens,
      temperature,
      reasoningEffort: reasoningEffort ?? config.models.reasoningEffort,
      // Only a regenerated reply keeps its id; any other reply is a new message.
      messageId: trigger === 'regenerate-message' ? messageId : undefined,
    };
  };
}

const role = z.enum(['user', 'assistant'], {
  error: (issue) =>
    issue.input === 'system'
      ? 'system messages are not accepted: the server sets the system prompt'
      : 'must be "user" or "assistant"',
});

function messageSchemas(caps: RequestCaps) {
  const text = z.string({ error: 'must be a string' }).check(
    z.refine((s) => s.trim().length > 0, 'must not be empty'),
    z.refine(
      (s) => s.length <= caps.maxMessageChars,
      `is too long (at most ${caps.maxMessageChars} characters)`,
    ),
  );
  const simpleMessage = z.object({ role, content: text });
  const textPart = z.object({ type: z.literal('text'), text: z.string({ error: 'must be a string' }) });
  // useChat adds `step-start` markers to assistant messages; they carry no content, so they are dropped.
  const stepStartPart = z.object({ type: z.literal('step-start') });
  const part = z.discriminatedUnion('type', [textPart, stepStartPart], {
    error: (issue) =>
      issue.code === 'invalid_union' ? 'only text parts are supported (type "text")' : 'must be an object',
  });
  const uiMessage = z.pipe(
    z.object({
      id: z.optional(z.string().check(z.maxLength(200))),
      role,
      parts: z
        .array(part, { error: 'must be an array of parts' })
        .check(z.minLength(1, 'must contain at least one text part')),
    }),
    z.pipe(
      z.transform(({ role, parts }: { role: ChatRole; parts: z.output<typeof part>[] }) => ({
        role,
        content: parts.map((p) => (p.type === 'text' ? p.text : '')).join(''),
      })),
      z.object({ role, content: text }),
    ),
  );
  return { simpleMessage, uiMessage };
}

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
    // useChat sends the id of the assistant message it regenerates; the reply's `start` reuses it.
    messageId: z.optional(
      z.string({ error: 'must be a string' }).check(z.regex(/^[\w.:-]{1,200}$/, 'is not a valid id')),
    ),
  };
}

function messageList<T extends z.ZodMiniType<ChatMessage, unknown>>(message: T, caps: RequestCaps) {
  return z.array(message, { error: 'is required and must be an array of messages' }).check(
    z.minLength(1, 'must contain at least one message'),
    z.maxLength(caps.maxMessages, `has too many messages (at most ${caps.maxMessages})`),
    z.refine(
      // zod still runs this check when an element failed, so it must not trust the element shapes.
      (list) =>
        list.reduce((n, m) => n + (typeof m?.content === 'string' ? m.content.length : 0), 0) <=
        caps.maxTotalChars,
      `are too long in total (at most ${caps.maxTotalChars} characters across the conversation)`,
    ),
  );
}

function looksLikeUseChat(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || !('messages' in body)) return false;
  const { messages } = body;
  return Array.isArray(messages) && messages.some((m) => typeof m === 'object' && m !== null && 'parts' in m);
}

function validationError(error: z.core.$ZodError): ProxyError {
  const issues = error.issues.slice(0, 3).map((issue) => {
    const path = formatPath(issue.path);
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more)` : '';
  const first = error.issues[0];
  return new ProxyError(400, 'invalid_request', `Invalid request: ${issues.join('; ')}${more}.`, {
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
