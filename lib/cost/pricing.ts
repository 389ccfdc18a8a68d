import type { CostConfig } from '../config/cost';
import type { Amount } from '../limits/stores';
import type { ChatRequest, Usage } from '../types';
import { CATALOGUE } from './catalogue';
import { costMicros, toUsd, wholeMicros, worstCaseMicros } from './cost';
import { findPrice, type ModelPrice, type PriceTable } from './price-table';

/** The one line a model without a price gets, once per proxy: its replies are logged with `cost_usd: 'unknown'`. */
export interface UnknownPriceNotice {
  readonly level: 'warn';
  readonly msg: 'model_price_unknown';
  readonly model: string;
  readonly detail: string;
}

export interface Pricing {
  /** The model's price, or `undefined` (and, the first time for this model, a notice). */
  priceOf(model: string): ModelPrice | undefined;
  /** What a reply cost in USD; `undefined` when its model has no price: unknown, never a silent 0. */
  costUsd(model: string, usage: Usage): number | undefined;
  /**
   * What a spend budget reserves for a request: its worst case on the dearest model that may answer it (the asked-for
   * one, or a fallback), in whole micro-dollars. 0 when no spend limit is on.
   */
  reserve(model: string, promptTokens: number, maxOutputTokens: number): number;
  /** What a reply cost, in whole micro-dollars, for settling the spend budgets; 0 when no spend limit is on. */
  charge(model: string, usage: Usage): number;
}

export interface PricingOptions {
  readonly cost: CostConfig;
  /** `FALLBACK_MODELS`: any of them may answer instead, so the reservation covers the dearest. */
  readonly fallbackModels: readonly string[];
  /** Whether a spend limit is on; without one nothing is reserved or charged. */
  readonly spendLimited: boolean;
  /** Where the notice goes: the proxy's logger, so it lands wherever its request lines do. */
  readonly notice: (line: UnknownPriceNotice) => void;
  /** The shipped table by default; tests pass their own. */
  readonly table?: PriceTable;
}

/** Model names whose price is remembered: far more than a deployment serves (clients choose only among allowed ones). */
const MODELS_REMEMBERED = 256;

/**
 * One notice per model per pricing, that is per proxy: a server or an edge instance builds one proxy, so the operator
 * hears of a model once per process. Kept here rather than for the whole process so that each proxy's own logger
 * (a test's, with its lines) gets the notice, whichever proxy happened to meet the model first.
 */
export function createPricing(options: PricingOptions): Pricing {
  const { cost, fallbackModels, spendLimited, notice } = options;
  const table = options.table ?? CATALOGUE;
  const warned = new Set<string>();
  // Each reply asks its model's price; the answer never changes, and an unknown model costs a scan of every prefix.
  const known = new Map<string, ModelPrice | undefined>();
  const priceOf = (model: string) => {
    if (known.has(model)) return known.get(model);
    const price = findPrice(table, cost.overrides, model);
    if (known.size >= MODELS_REMEMBERED) known.clear();
    known.set(model, price);
    if (!price && !warned.has(model)) {
      warned.add(model);
      notice({
        level: 'warn',
        msg: 'model_price_unknown',
        model,
        detail:
          'no price for this model: its replies are logged with cost_usd "unknown"; set MODEL_PRICES or MODEL_PRICES_FILE to price it',
      });
    }
    return price;
  };
  return {
    priceOf,
    costUsd(model, usage) {
      const price = priceOf(model);
      return price && toUsd(costMicros(usage, price));
    },
    reserve(model, promptTokens, maxOutputTokens) {
      if (!spendLimited) return 0;
      // Startup refused every unpriced model that may answer (lib/config/cost.ts), so none is skipped here.
      const prices = [model, ...fallbackModels].map(priceOf).filter((p) => p !== undefined);
      return Math.max(
        0,
        ...prices.map((p) => wholeMicros(worstCaseMicros(p, promptTokens, maxOutputTokens))),
      );
    },
    charge(model, usage) {
      if (!spendLimited) return 0;
      const price = priceOf(model);
      return price ? wholeMicros(costMicros(usage, price)) : 0;
    },
  };
}

/**
 * What a request reserves from the budgets: its worst case in tokens (`worstCaseTokens`, lib/limits/token-bound.ts:
 * the prompt's bound plus the longest reply) and, with a spend limit, in micro-dollars.
 */
export function withSpend(
  pricing: Pricing,
  request: Pick<ChatRequest, 'maxTokens' | 'model'>,
  worstCaseTokens: number,
): Amount {
  const prompt = worstCaseTokens - request.maxTokens;
  return { tokens: worstCaseTokens, micros: pricing.reserve(request.model, prompt, request.maxTokens) };
}
