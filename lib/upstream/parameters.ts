import { APIError } from 'openai/error';
import type {
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { ModelOptions } from '../config/models';
import type { ToolDeclaration } from '../config/tools';
import type { ChatMessage, ChatRequest } from '../types';

/** What an upstream taught us about one model: the token parameter it wants, and parameters it refuses. */
interface Fix {
  tokenParam?: ModelOptions['tokenParam'];
  readonly dropped: Set<string>;
}

export interface ParameterFixes {
  /** The request body for `model`: the options' parameters, with everything this upstream refused fixed. */
  body(request: ChatRequest, model: string, options: ModelOptions): ChatCompletionCreateParamsStreaming;
  /**
   * Learns from a refusal (400 `unsupported_parameter` / `unsupported_value` naming a parameter): switches the token
   * parameter or drops the refused one, for this model, for the life of the instance. Returns what it changed, or
   * `undefined` when the error is not such a refusal (or was already learned, so retrying would fail the same way).
   */
  learn(model: string, error: unknown): string | undefined;
}

const REFUSAL_CODES = new Set(['unsupported_parameter', 'unsupported_value']);
const TOKEN_PARAMS = ['max_tokens', 'max_completion_tokens'] as const;

/**
 * Per-model parameters that adapt once. The built-in rule (lib/config/models.ts) gets OpenAI's models right with no
 * configuration; a provider with other rules says so in a 400, and we fix the request instead of failing the user.
 * The fix is kept per provider (one of these per target) and model, so later requests pay nothing.
 */
export function createParameterFixes(
  systemPrompt: string,
  identifierParam: 'safety_identifier' | 'user',
  declaredTools: readonly ToolDeclaration[] = [],
): ParameterFixes {
  const fixes = new Map<string, Fix>();
  // Outside `params`, so a refusal never drops them: a model without tools would answer as if it had none.
  const tools: { tools?: ChatCompletionTool[] } = declaredTools.length
    ? { tools: declaredTools.map(toTool) }
    : {};
  const system: ChatCompletionMessageParam[] = systemPrompt
    ? [{ role: 'system', content: systemPrompt }]
    : [];

  return {
    body(request, model, options) {
      const fix = fixes.get(model);
      const params: Record<string, unknown> = {
        [fix?.tokenParam ?? options.tokenParam]: request.maxTokens,
        ...(options.temperature && request.temperature !== undefined && { temperature: request.temperature }),
        ...(options.reasoningEffort &&
          request.reasoningEffort && { reasoning_effort: request.reasoningEffort }),
        ...(request.safetyIdentifier && { [identifierParam]: request.safetyIdentifier }),
      };
      for (const name of fix?.dropped ?? []) delete params[name];
      // Onto `params` itself, in the same key order: not spreads followed by properties (Node 20's slow path).
      return Object.assign(params, tools, {
        model,
        messages: [...system, ...request.messages.map(toParam)],
        stream: true as const,
        stream_options: { include_usage: true },
      });
    },
    learn(model, error) {
      if (!(error instanceof APIError) || error.status !== 400 || !REFUSAL_CODES.has(String(error.code))) {
        return undefined;
      }
      const param = refusedParam(error);
      if (!param) return undefined;
      const fix = fixes.get(model) ?? { dropped: new Set<string>() };
      fixes.set(model, fix);
      const other = TOKEN_PARAMS.find((p) => p !== param);
      if (other && TOKEN_PARAMS.includes(param as (typeof TOKEN_PARAMS)[number])) {
        if (fix.tokenParam === other) return undefined; // both refused: nothing left to try
        fix.tokenParam = other;
        return `${param}→${other}`;
      }
      if (fix.dropped.has(param) || param === 'messages' || param === 'model') return undefined;
      fix.dropped.add(param);
      return `-${param}`;
    },
  };
}

/** OpenAI's message shape. A copy of the parts array: the SDK's types want it mutable, ours is readonly. */
function toParam(message: ChatMessage): ChatCompletionMessageParam {
  if (message.role === 'tool') {
    return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
  }
  const { content } = message;
  if (typeof content !== 'string') return { role: 'user', content: [...content] };
  if (message.role === 'user') return { role: 'user', content };
  if (!message.toolCalls?.length) return { role: 'assistant', content };
  return {
    role: 'assistant',
    // OpenAI takes null, not an empty string, for a turn that only called tools.
    content: content || null,
    tool_calls: message.toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.arguments },
    })),
  };
}

function toTool(tool: ToolDeclaration): ChatCompletionTool {
  return {
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description !== undefined && { description: tool.description }),
      parameters: { ...tool.parameters },
    },
  };
}

/** The refused parameter: OpenAI names it in `param`; some servers only in the message ("Unsupported parameter: 'x'"). */
function refusedParam(error: APIError): string | undefined {
  if (typeof error.param === 'string' && /^\w+$/.test(error.param)) return error.param;
  return /parameter:? '(\w+)'/i.exec(error.message)?.[1];
}
