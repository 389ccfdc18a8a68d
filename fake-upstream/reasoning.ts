import { splitTokens } from './behaviours';

/** How the fake behaves for models that reason. */
export interface ReasoningOptions {
  /** Which model names reason, e.g. `/^(o\d|gpt-5)|reason/`. */
  readonly models: RegExp;
  /** The delta field the reasoning streams in: `reasoning_content` (vLLM, DeepSeek) or `reasoning` (OpenRouter, Groq). */
  readonly field: 'reasoning_content' | 'reasoning';
  /** Refuse `max_tokens` and a non-default `temperature`, exactly as OpenAI's o-series and gpt-5 answer. */
  readonly strict: boolean;
}

interface OpenAiError {
  readonly status: number;
  readonly body: { error: { message: string; type: string; param: string; code: string } };
}

/** OpenAI's own answers to the parameters its reasoning models refuse; `undefined` when the body is acceptable. */
export function refusal(body: Record<string, unknown>): OpenAiError | undefined {
  const error = (param: string, code: string, message: string): OpenAiError => ({
    status: 400,
    body: { error: { message, type: 'invalid_request_error', param, code } },
  });
  if ('max_tokens' in body) {
    return error(
      'max_tokens',
      'unsupported_parameter',
      "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    );
  }
  if (body.temperature !== undefined && body.temperature !== 1) {
    return error(
      'temperature',
      'unsupported_value',
      `Unsupported value: 'temperature' does not support ${String(body.temperature)} with this model. Only the default (1) value is supported.`,
    );
  }
  return undefined;
}

/** What the model "thinks" before it answers, split into deltas. */
export function thoughts(question: string): string[] {
  return splitTokens(
    `The user asked about "${question.slice(0, 60)}". Let me think it through step by step.`,
  );
}
