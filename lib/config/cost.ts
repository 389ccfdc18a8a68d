import * as z from 'zod/mini';
import { CATALOGUE } from '../cost/catalogue';
import { findPrice, type ModelPrice, type PriceTable } from '../cost/price-table';
import { invalid, MODEL_NAME } from './env';
import type { SpendLimits } from './rate-limit';

/** Prices: the shipped table (lib/cost/prices.json) and what the operator sets over it. */
export interface CostConfig {
  /** `MODEL_PRICES`, by lowercased model id: these win over the table, dated snapshots of the model included. */
  readonly overrides: Readonly<Record<string, ModelPrice>>;
}

/** USD per million tokens: zero is allowed (a self-hosted model), a negative or absurd price is a typo. */
const perMillion = z
  .number({ error: 'must be a number' })
  .check(z.gte(0, 'must be 0 or more'), z.lte(10_000, 'must be at most 10000'));

const pricesSchema = z.record(
  z.string(),
  z
    .strictObject(
      {
        input: z.optional(perMillion),
        cachedInput: z.optional(perMillion),
        output: z.optional(perMillion),
        reasoning: z.optional(perMillion),
      },
      { error: 'must be an object with input, output and optionally cachedInput and reasoning' },
    )
    .check(z.refine((p) => p.input !== undefined && p.output !== undefined, 'needs both input and output')),
);

export const costEnv = z.object({
  /** The prices as JSON; on the Node server `MODEL_PRICES_FILE` fills it in (server/config-files.ts). */
  MODEL_PRICES: z.optional(z.string()),
  MODEL_PRICES_FILE: z.optional(z.string()),
});

const EXAMPLE = '{"my-model": {"input": 0.15, "cachedInput": 0.075, "output": 0.6}}';

/** `mayAnswer`: the models that may answer (ALLOWED_MODELS, FALLBACK_MODELS), which a spend limit needs priced. */
export function toCostConfig(
  e: z.output<typeof costEnv>,
  mayAnswer: readonly string[],
  spend: SpendLimits,
): CostConfig {
  // The Node server reads the file and hands its content over as MODEL_PRICES; only the edge can still see it here.
  if (e.MODEL_PRICES_FILE !== undefined) {
    throw invalid(
      'MODEL_PRICES_FILE',
      'is read by the Node server only: on the edge, put the JSON in MODEL_PRICES',
    );
  }
  const cost = { overrides: parsePrices(e.MODEL_PRICES) };
  checkPriced(mayAnswer, cost, spend.budgetMicros > 0 || spend.globalDailyMicros > 0);
  return cost;
}

function parsePrices(json: string | undefined): Record<string, ModelPrice> {
  if (!json) return {};
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid('MODEL_PRICES', `must be JSON: USD per million tokens by model, e.g. ${EXAMPLE}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('MODEL_PRICES', `must be an object of prices by model, e.g. ${EXAMPLE}`);
  }
  const badName = Object.keys(value).find((model) => !MODEL_NAME.test(model));
  if (badName !== undefined) throw invalid('MODEL_PRICES', `"${badName}" is not a model name`);
  const parsed = pricesSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.map(String).join('.') || 'the value';
    throw invalid(
      'MODEL_PRICES',
      `${where}: ${issue?.message ?? 'is invalid'} (USD per million tokens, e.g. ${EXAMPLE})`,
    );
  }
  // Both are present (checked above); optional in the schema only so a missing one gets that clearer message.
  return Object.fromEntries(
    Object.entries(parsed.data).map(([model, { input = 0, output = 0, ...rest }]) => [
      model.toLowerCase(),
      { input, output, ...rest },
    ]),
  );
}

/**
 * With a spend limit on, every model that may answer (ALLOWED_MODELS, FALLBACK_MODELS) must have a price: an
 * unpriced model would either spend for free or need a made-up price, and the operator should choose, not us.
 */
export function checkPriced(
  models: readonly string[],
  cost: CostConfig,
  spendLimited: boolean,
  table: PriceTable = CATALOGUE,
): void {
  if (!spendLimited) return;
  const unpriced = [...new Set(models)].filter((model) => !findPrice(table, cost.overrides, model));
  if (unpriced.length === 0) return;
  throw invalid(
    'MODEL_PRICES',
    `has no price for ${unpriced.map((m) => `"${m}"`).join(', ')}, and SPEND_BUDGET_USD or GLOBAL_SPEND_BUDGET_USD needs one for every model that may answer: add it, e.g. {"${unpriced[0]}": {"input": 0.15, "output": 0.6}}`,
  );
}
