import type { Amount } from '../limits/stores';
import type { RequestLog } from '../log';
import { textOf } from '../parts/content';
import type { ChatRequest, Usage } from '../types';
import type { ServedReply } from '../upstream/failover';
import type { Pricing } from './pricing';

/**
 * What a reply used: what the upstream reported, or, for a stream cut short before its usage chunk, an estimate of
 * the prompt (four characters a token) and of what was generated (one token a delta). `undefined` for the operator's
 * fallback message, which no model generated.
 */
export function usageOf(reply: ServedReply, request: ChatRequest): Usage | undefined {
  if (reply.served.fallback === 'message') return undefined;
  if (reply.outcome.usage) return reply.outcome.usage;
  const promptChars = request.messages.reduce((n, m) => n + textOf(m).length, 0);
  const promptTokens = Math.ceil(promptChars / 4);
  const completionTokens = reply.outcome.deltas;
  return {
    promptTokens,
    completionTokens,
    reasoningTokens: undefined,
    totalTokens: promptTokens + completionTokens,
  };
}

/** What a reply's reservation settles to: its tokens and (with a spend limit) its cost in micro-dollars. */
export function amountUsed(reply: ServedReply, request: ChatRequest, pricing: Pricing): Amount {
  const usage = usageOf(reply, request);
  if (!usage) return { tokens: 0, micros: 0 };
  return { tokens: usage.totalTokens, micros: pricing.charge(reply.served.model ?? request.model, usage) };
}

/**
 * `cost_usd` for the log line: what this request made the deployment spend. A follower of a coalesced reply or a
 * cache hit spent nothing (`produced` is the reply this request paid for, if any); a model without a price is
 * `unknown`, never 0.
 */
export function costFields(
  pricing: Pricing,
  produced: ServedReply | undefined,
  request: ChatRequest,
): Pick<RequestLog, 'cost_usd'> {
  const usage = produced && usageOf(produced, request);
  if (!produced || !usage) return { cost_usd: 0 };
  return { cost_usd: pricing.costUsd(produced.served.model ?? request.model, usage) ?? 'unknown' };
}
