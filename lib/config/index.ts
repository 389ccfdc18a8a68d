import * as z from 'zod/mini';
import { operatorTokenBound } from '../limits/token-bound';
import { type AttachmentsConfig, attachmentsEnv, toAttachmentsConfig } from './attachments';
import { type CostConfig, costEnv, toCostConfig } from './cost';
import { commaList, type Env, httpUrl, invalid, modelName, parseEnv, positiveInt } from './env';
import { type FailoverConfig, failoverEnv, toFailoverConfig } from './failover';
import { type HistoryConfig, historyEnv, toHistoryConfig } from './history';
import { type ModelsConfig, modelsEnv, toModelsConfig } from './models';
import { type ModerationConfig, moderationEnv, toModerationConfig } from './moderation';
import { type QueueConfig, queueEnv, toQueueConfig } from './queue';
import { type RateLimitConfig, rateLimitEnv, toRateLimitConfig } from './rate-limit';
import { type RepliesConfig, repliesEnv, toRepliesConfig } from './replies';
import { type SecurityConfig, securityEnv, toSecurityConfig } from './security';
import { type ToolsConfig, toolsEnv, toToolsConfig } from './tools';

export { ConfigError, type Env } from './env';

/**
 * The proxy's settings, parsed once from the environment. Every variable is documented in `.env.example` and in the
 * README's configuration table; tests/config-docs.test.ts keeps the three in step.
 */
export interface Config {
  /** Upstream API key. Required: it is the one secret this proxy exists to keep off the browser. */
  readonly apiKey: string;
  /** Any OpenAI-compatible base URL (Groq, OpenRouter, Ollama, vLLM...). Default: OpenAI's own. */
  readonly baseURL: string | undefined;
  /** Model used when the client names none. */
  readonly defaultModel: string;
  /** The only models a client may ask for. Default: just `defaultModel`, so a client cannot pick a pricier one. */
  readonly allowedModels: readonly string[];
  /** Sent as the first message of every conversation; clients may not send their own. Empty means none. */
  readonly systemPrompt: string;
  /**
   * An upper bound of the tokens the operator adds to every prompt: the system prompt and the declared TOOLS
   * (lib/limits/token-bound.ts). Every request reserves it, and a stream cut before its usage is charged it.
   */
  readonly operatorTokens: number;
  /** How big one request may be. (Rate limits, which count requests over time, are `rateLimit`.) */
  readonly caps: RequestCaps;
  /** Long conversations: the input-token cap, and whether to trim or refuse past any cap. */
  readonly history: HistoryConfig;
  readonly rateLimit: RateLimitConfig;
  /** Retries, fallbacks and timeouts. */
  readonly failover: FailoverConfig;
  /** CORS and caller auth. */
  readonly security: SecurityConfig;
  /** Per-model parameters, reasoning and the safety identifier. */
  readonly models: ModelsConfig;
  /** Input moderation (`MODERATION`), off by default. */
  readonly moderation: ModerationConfig;
  /** `file` parts: the allowed media types, their count and size caps, and the hosts whose URLs pass through. */
  readonly attachments: AttachmentsConfig;
  /** Client-side tools the operator declares (`TOOLS`, or `TOOLS_FILE` on the Node server). */
  readonly tools: ToolsConfig;
  /** The reply log: response cache, coalescing of identical prompts, resumable streams. */
  readonly replies: RepliesConfig;
  /** Heavy traffic: each provider's capacity, and the fair queue that waits for it. */
  readonly queue: QueueConfig;
  /** Prices: `MODEL_PRICES` over the shipped table (lib/cost). The spend limits themselves are in `rateLimit`. */
  readonly cost: CostConfig;
  /** Every secret value in this config, so log lines and errors can be scrubbed of them. */
  readonly secrets: readonly string[];
}

export interface RequestCaps {
  /** Messages per conversation. Long histories cost input tokens on every turn. */
  readonly maxMessages: number;
  /** Characters in one message. */
  readonly maxMessageChars: number;
  /** Characters across the whole conversation: the real driver of input cost. */
  readonly maxTotalChars: number;
  /** Output tokens per reply: sent upstream as `max_tokens`; a client may ask for fewer, never more. */
  readonly maxOutputTokens: number;
  /** Request body bytes, counted while reading (never trusted from `Content-Length`). */
  readonly maxBodyBytes: number;
  /** The whole body must arrive within this, so a trickled upload cannot hold a connection open. */
  readonly bodyTimeoutMs: number;
}

const envSchema = z.object({
  OPENAI_API_KEY: z
    .string({ error: 'is required (your upstream API key)' })
    .check(z.trim(), z.minLength(1, 'is required')),
  OPENAI_BASE_URL: z.optional(httpUrl()),
  CHAT_MODEL: z._default(modelName(), 'gpt-4o-mini'),
  ALLOWED_MODELS: z.optional(commaList(modelName()).check(z.minLength(1, 'must list at least one model'))),
  SYSTEM_PROMPT: z._default(
    z.string().check(z.maxLength(20_000, 'is too long (20000 characters at most)')),
    '',
  ),
  MAX_MESSAGES: positiveInt(50),
  MAX_MESSAGE_CHARS: positiveInt(8_000),
  MAX_TOTAL_CHARS: positiveInt(32_000),
  MAX_OUTPUT_TOKENS: positiveInt(1_024),
  MAX_BODY_BYTES: positiveInt(256 * 1024),
  BODY_TIMEOUT_MS: positiveInt(10_000),
});

/** Every variable the config reads by name (providers add `UPSTREAM_<NAME>_*`); the docs test checks them. */
export const CONFIG_VARIABLES: readonly string[] = [
  ...Object.keys(envSchema.shape),
  ...Object.keys(historyEnv.shape),
  ...Object.keys(rateLimitEnv.shape),
  ...Object.keys(failoverEnv.shape),
  ...Object.keys(securityEnv.shape),
  ...Object.keys(modelsEnv.shape),
  ...Object.keys(moderationEnv.shape),
  ...Object.keys(attachmentsEnv.shape),
  ...Object.keys(toolsEnv.shape),
  ...Object.keys(repliesEnv.shape),
  ...Object.keys(queueEnv.shape),
  ...Object.keys(costEnv.shape),
];

export interface LoadOptions {
  /**
   * In production, limits must live in a shared store. Default: `NODE_ENV=production` or running on Vercel.
   * The Node server passes `true` for `npm start`.
   */
  readonly production?: boolean;
}

/** Parses the environment into a frozen config, or throws a ConfigError naming every bad variable. */
export function loadConfig(env: Env, options: LoadOptions = {}): Config {
  const schema = z.extend(envSchema, {
    ...historyEnv.shape,
    ...rateLimitEnv.shape,
    ...failoverEnv.shape,
    ...securityEnv.shape,
    ...modelsEnv.shape,
    ...moderationEnv.shape,
    ...attachmentsEnv.shape,
    ...toolsEnv.shape,
    ...repliesEnv.shape,
    ...queueEnv.shape,
    ...costEnv.shape,
  });
  const e = parseEnv(schema, env);
  const production = options.production ?? (env.NODE_ENV === 'production' || env.VERCEL === '1');
  const rateLimit = toRateLimitConfig(e, production);
  const failover = toFailoverConfig(e, env);
  const tools = toToolsConfig(e);
  const security = toSecurityConfig(e, production);
  const allowedModels = checkedModels(e, rateLimit);
  return deepFreeze({
    apiKey: e.OPENAI_API_KEY,
    baseURL: e.OPENAI_BASE_URL,
    defaultModel: e.CHAT_MODEL,
    allowedModels,
    systemPrompt: e.SYSTEM_PROMPT.trim(),
    operatorTokens: operatorTokenBound(e.SYSTEM_PROMPT.trim(), tools.declared),
    caps: {
      maxMessages: e.MAX_MESSAGES,
      maxMessageChars: e.MAX_MESSAGE_CHARS,
      maxTotalChars: e.MAX_TOTAL_CHARS,
      maxOutputTokens: e.MAX_OUTPUT_TOKENS,
      maxBodyBytes: e.MAX_BODY_BYTES,
      bodyTimeoutMs: e.BODY_TIMEOUT_MS,
    },
    history: toHistoryConfig(e, e.SYSTEM_PROMPT.trim(), tools.declared),
    rateLimit,
    failover,
    security,
    models: toModelsConfig(e, e.OPENAI_API_KEY),
    moderation: toModerationConfig(e),
    attachments: toAttachmentsConfig(e),
    tools,
    replies: toRepliesConfig(e),
    queue: toQueueConfig(e, env, Object.keys(failover.providers), failover.policy.startDeadlineMs),
    cost: toCostConfig(e, [...allowedModels, ...failover.fallbacks.map((f) => f.model)], rateLimit.spend),
    secrets: [
      e.OPENAI_API_KEY,
      ...storeSecrets(rateLimit),
      ...Object.values(failover.providers).map((p) => p.apiKey),
      ...security.authTokens.keys(),
      ...(security.jwt?.secret ? [security.jwt.secret] : []),
      ...(e.SAFETY_IDENTIFIER_SECRET ? [e.SAFETY_IDENTIFIER_SECRET] : []),
    ],
  });
}

/** `ALLOWED_MODELS` (default: just `CHAT_MODEL`), once the settings that must agree with it are checked. */
function checkedModels(
  e: { CHAT_MODEL: string; ALLOWED_MODELS?: string[] | undefined; MAX_OUTPUT_TOKENS: number },
  rateLimit: RateLimitConfig,
): string[] {
  const allowedModels = e.ALLOWED_MODELS ?? [e.CHAT_MODEL];
  if (!allowedModels.includes(e.CHAT_MODEL)) {
    throw invalid(
      'CHAT_MODEL',
      `"${e.CHAT_MODEL}" must be one of ALLOWED_MODELS (${allowedModels.join(', ')})`,
    );
  }
  if (rateLimit.tokenBudget <= e.MAX_OUTPUT_TOKENS) {
    throw invalid(
      'TOKEN_BUDGET',
      'must be larger than MAX_OUTPUT_TOKENS: every request reserves its longest reply',
    );
  }
  return allowedModels;
}

function storeSecrets(rateLimit: RateLimitConfig): string[] {
  const { store } = rateLimit;
  if (store.kind === 'upstash') return [store.token];
  if (store.kind === 'redis') {
    const password = new URL(store.url).password;
    return password ? [store.url, decodeURIComponent(password)] : [];
  }
  return [];
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}
