import * as z from 'zod/mini';
import type { ReasoningEffort } from '../types';
import { commaList, invalid } from './env';

/** How to talk to one model. Every field is optional in `MODEL_OPTIONS`; the built-in rule fills in the rest. */
export interface ModelOptions {
  /** OpenAI's reasoning models refuse `max_tokens` and want `max_completion_tokens`. */
  readonly tokenParam: 'max_tokens' | 'max_completion_tokens';
  /** Whether a client's `temperature` may be sent (reasoning models refuse anything but the default). */
  readonly temperature: boolean;
  /** Whether `reasoning_effort` may be sent. */
  readonly reasoningEffort: boolean;
  /** This model's own first-token deadline: a reasoning model may think for long before its first delta. */
  readonly firstTokenTimeoutMs: number | undefined;
  /**
   * Whether the model reads images. Default true; a text-only model declared `"vision": false` answers a request
   * with an image with a clear 400 (`images_not_supported`) instead of the provider's own error.
   */
  readonly vision: boolean;
}

const EFFORTS = ['minimal', 'low', 'medium', 'high'] as const;
const effort = z.enum(EFFORTS, { error: `must be one of ${EFFORTS.join(', ')}` });

const overrideSchema = z.record(
  z.string(),
  z.strictObject({
    tokenParam: z.optional(z.enum(['max_tokens', 'max_completion_tokens'])),
    temperature: z.optional(z.boolean()),
    reasoningEffort: z.optional(z.boolean()),
    firstTokenTimeoutMs: z.optional(z.number().check(z.int(), z.positive())),
    vision: z.optional(z.boolean()),
  }),
);

export type ModelOverrides = z.output<typeof overrideSchema>;

export const modelsEnv = z.object({
  MODEL_OPTIONS: z.optional(z.string()),
  REASONING_EFFORT: z.optional(effort),
  REASONING_EFFORTS: z.optional(commaList(effort)),
  REASONING_IN_TEXT: z._default(z.enum(['on', 'off'], { error: 'must be "on" or "off"' }), 'off'),
  SAFETY_IDENTIFIER: z._default(z.enum(['on', 'off'], { error: 'must be "on" or "off"' }), 'on'),
  SAFETY_IDENTIFIER_SECRET: z.optional(z.string().check(z.minLength(16, 'must be at least 16 characters'))),
});

export interface ModelsConfig {
  /** `MODEL_OPTIONS`: per model name (or `prefix*`), what differs from the built-in rule. */
  readonly overrides: ModelOverrides;
  /** Sent to models that take it when the client names none. */
  readonly reasoningEffort: ReasoningEffort | undefined;
  /** What a client may ask for with `reasoningEffort`; empty: clients may not choose. */
  readonly clientEfforts: readonly ReasoningEffort[];
  /** Plain-text replies show the reasoning too, marked, instead of leaving it out. */
  readonly reasoningInText: boolean;
  /** The HMAC secret of the safety identifier (undefined: the identifier is off). */
  readonly safetyIdentifierSecret: string | undefined;
}

/** `apiKey` keys the safety identifier when no `SAFETY_IDENTIFIER_SECRET` is set. */
export function toModelsConfig(e: z.output<typeof modelsEnv>, apiKey: string): ModelsConfig {
  return {
    overrides: parseOverrides(e.MODEL_OPTIONS),
    reasoningEffort: e.REASONING_EFFORT,
    clientEfforts: e.REASONING_EFFORTS ?? [],
    reasoningInText: e.REASONING_IN_TEXT === 'on',
    safetyIdentifierSecret: e.SAFETY_IDENTIFIER === 'on' ? (e.SAFETY_IDENTIFIER_SECRET ?? apiKey) : undefined,
  };
}

function parseOverrides(json: string | undefined): ModelOverrides {
  if (!json) return {};
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid(
      'MODEL_OPTIONS',
      'must be JSON, e.g. {"my-model": {"tokenParam": "max_completion_tokens"}}',
    );
  }
  const parsed = overrideSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw invalid('MODEL_OPTIONS', `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'is invalid'}`);
}

/**
 * OpenAI's reasoning families (o1, o3, o4-mini, gpt-5, gpt-5-mini, gpt-5.1...), also behind a provider prefix such as
 * OpenRouter's `openai/o3`. They refuse `max_tokens` and a non-default `temperature`, and take `reasoning_effort`.
 */
const REASONING_MODEL = /^(o\d+|gpt-5)([.-]|$)/i;

/** The built-in rule, then the operator's `MODEL_OPTIONS` (an exact name wins over a `prefix*`). */
export function optionsFor(model: string, models: ModelsConfig, startDeadlineMs: number): ModelOptions {
  const reasoning = REASONING_MODEL.test(model.slice(model.lastIndexOf('/') + 1));
  const builtIn: ModelOptions = reasoning
    ? {
        tokenParam: 'max_completion_tokens',
        temperature: false,
        reasoningEffort: true,
        firstTokenTimeoutMs: startDeadlineMs,
        vision: true,
      }
    : {
        tokenParam: 'max_tokens',
        temperature: true,
        reasoningEffort: false,
        firstTokenTimeoutMs: undefined,
        vision: true,
      };
  const prefix = Object.entries(models.overrides)
    .filter(([pattern]) => pattern.endsWith('*') && model.startsWith(pattern.slice(0, -1)))
    .sort(([a], [b]) => b.length - a.length)[0]?.[1];
  return { ...builtIn, ...prefix, ...models.overrides[model] };
}

/** Whether `model` reads images (`"vision": false` in `MODEL_OPTIONS` says it does not). */
export function acceptsImages(model: string, models: ModelsConfig): boolean {
  // The deadline only shapes `firstTokenTimeoutMs`, which is not read here.
  return optionsFor(model, models, 0).vision;
}
