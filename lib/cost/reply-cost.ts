import type { Amount } from '../limits/stores';
import { promptTokenBound } from '../limits/token-bound';
import type { RequestLog } from '../log';
import type { ChatRequest, Usage } from '../types';
import type { ServedReply } from '../upstream/failover';
import type { Pricing } from './pricing';

/**
 * What a reply used: what the upstream reported, or, for a stream cut short before its usage chunk (the client left,
 * a timeout), a conservative estimate: the prompt at the same bound its reservation used (system prompt, TOOLS,
 * messages and attachments, lib/limits/token-bound.ts) and one output
 * token per delta streamed (a delta carries at least one). A caller who always leaves just before the end must not
 * pay for the reply's text alone. `undefined` for the operator's fallback message, which no model generated.
 */
export function usageOf(reply: ServedReply, request: ChatRequest, operatorTokens: number): Usage | undefined {
  if (reply.served.fallback === 'message') return undefined;
  if (reply.outcome.usage) return reply.outcome.usage;
  const promptTokens = promptTokenBound(request, operatorTokens);
  const completionTokens = reply.outcome.deltas;
  return {
    promptTokens,
    completionTokens,
    // Reasoning deltas, if any, are charged at the output price: which deltas were reasoning is not kept.
    reasoningTokens: undefined,
    totalTokens: promptTokens + completionTokens,
  };
}

/**
 * What a reply's reservation settles to: its tokens and (with a spend limit) its cost in micro-dollars, both from
 * the one usage above, so the token budget and the spend budgets agree on what a cut stream used.
 */
export function amountUsed(
  reply: ServedReply,
  request: ChatRequest,
  pricing: Pricing,
  operatorTokens: number,
): Amount {
  const usage = usageOf(reply, request, operatorTokens);
  if (!usage) return { tokens: 0, micros: 0 };
  return { tokens: usage.totalTokens, micros: pricing.charge(reply.served.model ?? request.model, usage) };
}

/**
 * `cost_usd` for the log line: what this request made the deployment spend. A follower of a coalesced reply or a
 * cache hit spent nothing (`produced` is the reply this request paid for, if any); a model without a price is
 * `unknown`, never 0. A stream cut before its usage chunk logs the estimate its budgets were charged (`usageOf`), so
 * the log and the spend limits never disagree about it.
 */
export function costFields(
  pricing: Pricing,
  produced: ServedReply | undefined,
  request: ChatRequest,
  operatorTokens: number,
): Pick<RequestLog, 'cost_usd'> {
  const usage = produced && usageOf(produced, request, operatorTokens);
  if (!produced || !usage) return { cost_usd: 0 };
  return { cost_usd: pricing.costUsd(produced.served.model ?? request.model, usage) ?? 'unknown' };
}

/** What the UI stream's `finish` says a reply cost (`costUsd`): by the model that answered; none for the fallback message. */
export function costOfReply(
  pricing: Pricing,
  model: string | undefined,
): (usage: Usage) => number | undefined {
  return (usage) => (model ? pricing.costUsd(model, usage) : undefined);
}
