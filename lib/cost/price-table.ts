/**
 * What a model costs, in USD per million tokens, as providers publish it. `cachedInput` defaults to `input` (a
 * provider without prompt caching bills every prompt token in full) and `reasoning` to `output` (every provider we
 * know bills thinking as output).
 */
export interface ModelPrice {
  readonly input: number;
  readonly cachedInput?: number;
  readonly output: number;
  readonly reasoning?: number;
  /** Long-context pricing: once the prompt has more than `aboveInputTokens` tokens, every token costs these instead. */
  readonly longContext?: LongContextPrice;
}

export interface LongContextPrice {
  readonly aboveInputTokens: number;
  readonly input: number;
  readonly cachedInput?: number;
  readonly output: number;
}

/**
 * The compact catalogue lib/cost/prices.json holds (written by `npm run prices` from a pinned package, see
 * server/price-catalogue.ts): prices by model id, the other names a model is sold under (dated snapshots, `-latest`
 * spellings), and name prefixes (`gpt-4.5-preview…`).
 */
export interface PriceTable {
  readonly source?: string;
  readonly models: Readonly<Record<string, ModelPrice>>;
  readonly aliases: Readonly<Record<string, string>>;
  readonly prefixes: Readonly<Record<string, string>>;
}

/** A dated snapshot: `gpt-4o-mini-2024-07-18`, `gpt-4-0613`. Priced like the model it snapshots, unless listed. */
const DATE_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

/**
 * The price of `model`, or `undefined` when the table does not know it. `overrides` (the operator's `MODEL_PRICES`)
 * win. Tried in turn: the exact name, the name without a router's `provider/` prefix (OpenRouter's `openai/gpt-4o`),
 * each without a date suffix, then the longest known prefix. Case-insensitive, as providers treat model ids.
 */
export function findPrice(
  table: PriceTable,
  overrides: Readonly<Record<string, ModelPrice>>,
  model: string,
): ModelPrice | undefined {
  const lower = model.toLowerCase();
  const bare = lower.includes('/') ? lower.slice(lower.lastIndexOf('/') + 1) : lower;
  const names = [lower, lower.replace(DATE_SUFFIX, ''), bare, bare.replace(DATE_SUFFIX, '')];
  // The operator's price for a model wins over the catalogue's, dated snapshots included.
  for (const name of names) if (overrides[name]) return overrides[name];
  for (const name of names) {
    const price = table.models[name] ?? table.models[table.aliases[name] ?? ''];
    if (price) return price;
  }
  let best: string | undefined;
  for (const prefix of Object.keys(table.prefixes)) {
    if (bare.startsWith(prefix) && prefix.length > (best?.length ?? 0)) best = prefix;
  }
  return best === undefined ? undefined : table.models[table.prefixes[best] ?? ''];
}
