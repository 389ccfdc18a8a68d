import { readFileSync } from 'node:fs';
import {
  findProvider,
  type MatchLogic,
  type ModelInfo,
  type ModelPrice as SourcePrice,
  type TieredPrices,
} from '@pydantic/genai-prices';
import type { LongContextPrice, ModelPrice, PriceTable } from '../lib/cost/price-table';

/** The package the price table comes from, pinned exactly in package.json: a new version is a reviewed change. */
export const PRICE_SOURCE = '@pydantic/genai-prices';

/** The version installed (the package exports no `package.json`, so it is read from node_modules). */
export function installedVersion(): string {
  const manifest = new URL(`../node_modules/${PRICE_SOURCE}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

/**
 * First-party providers whose model names are their own (so a name means one price) and which have an
 * OpenAI-compatible API. Hosts of open models (Groq, Together, Fireworks...) sell the same names at different prices,
 * so they are left out: price those with `MODEL_PRICES`. On a name two providers share, the first one listed wins.
 * Each provider costs edge-bundle bytes (these four: ~2.5 KB gzipped; Mistral, xAI and Moonshot would add 1 KB).
 */
export const PRICE_PROVIDERS = ['openai', 'anthropic', 'google', 'deepseek'];

/** Not chat models, or priced by something other than text tokens: a chat proxy never sees them. */
const NOT_CHAT =
  /audio|realtime|transcribe|tts|image|embed|whisper|moderation|dall-e|imagen|veo|lyria|computer-use|^(ada|babbage|curie|davinci|text-)/;

/** Builds the compact table lib/cost/prices.json holds, with the prices in effect on `asOf` (`YYYY-MM-DD`). */
export function buildPriceTable(version: string, asOf: string): PriceTable & { asOf: string } {
  const models: Record<string, ModelPrice> = {};
  const aliases: Record<string, string> = {};
  const prefixes: Record<string, string> = {};
  for (const providerId of PRICE_PROVIDERS) {
    const provider = findProvider({ providerId });
    if (!provider) throw new Error(`${PRICE_SOURCE} ${version} has no provider "${providerId}"`);
    for (const model of provider.models) {
      const id = model.id.toLowerCase();
      if (NOT_CHAT.test(id) || models[id] || aliases[id]) continue;
      const price = toPrice(pricesOn(model, asOf));
      if (!price) continue;
      models[id] = price;
      const names = namesOf(model.match);
      for (const name of names.equals) if (name !== id && !models[name] && !aliases[name]) aliases[name] = id;
      for (const prefix of names.prefixes) if (!prefixes[prefix]) prefixes[prefix] = id;
    }
  }
  return {
    source: `${PRICE_SOURCE}@${version} (${PRICE_PROVIDERS.join(', ')}), in effect on ${asOf}`,
    asOf,
    models: sortKeys(models),
    aliases: sortKeys(aliases),
    prefixes: sortKeys(prefixes),
  };
}

/** The package's own rule: the last listed price whose start date has passed (time-of-day prices: the base one). */
function pricesOn(model: ModelInfo, asOf: string): SourcePrice {
  if (!Array.isArray(model.prices)) return model.prices;
  const day = new Date(asOf);
  for (let i = model.prices.length - 1; i >= 0; i--) {
    const entry = model.prices[i];
    const constraint = entry?.constraint;
    if (entry && constraint?.type === 'start_date' && day >= new Date(constraint.start_date))
      return entry.prices;
  }
  return model.prices[0]?.prices ?? {};
}

/** Text-token prices only; a model without both an input and an output price is not a chat model. */
function toPrice(source: SourcePrice): ModelPrice | undefined {
  const input = source.input_mtok;
  const output = source.output_mtok;
  const cached = source.cache_read_mtok;
  if (input === undefined || output === undefined) return undefined;
  const base = {
    input: baseOf(input),
    ...(cached !== undefined && { cachedInput: baseOf(cached) }),
    output: baseOf(output),
  };
  const long = longContextOf(input, cached, output);
  return long === null ? undefined : { ...base, ...(long && { longContext: long }) };
}

/**
 * The package's tiers as one long-context step (a tier's price applies to every token once the prompt passes its
 * start). `null`: tiers this table cannot express (several steps, or steps at different sizes), so the model is left
 * out rather than priced wrong.
 */
function longContextOf(
  input: number | TieredPrices,
  cached: number | TieredPrices | undefined,
  output: number | TieredPrices,
): LongContextPrice | undefined | null {
  const tiered = [input, cached, output].filter((p): p is TieredPrices => typeof p === 'object');
  if (tiered.length === 0) return undefined;
  const starts = new Set(tiered.flatMap((p) => p.tiers.map((t) => t.start)));
  if (starts.size !== 1 || tiered.some((p) => p.tiers.length !== 1)) return null;
  const [aboveInputTokens = 0] = starts;
  const top = (p: number | TieredPrices) => (typeof p === 'number' ? p : (p.tiers[0]?.price ?? p.base));
  return {
    aboveInputTokens,
    input: top(input),
    ...(cached !== undefined && { cachedInput: top(cached) }),
    output: top(output),
  };
}

function baseOf(price: number | TieredPrices): number {
  return typeof price === 'number' ? price : price.base;
}

/** The exact names and the prefixes a model matches; regexes (dated snapshots) are covered by the date-suffix rule. */
function namesOf(match: MatchLogic): { equals: string[]; prefixes: string[] } {
  if ('equals' in match) return { equals: [match.equals.toLowerCase()], prefixes: [] };
  if ('starts_with' in match) return { equals: [], prefixes: [match.starts_with.toLowerCase()] };
  if ('or' in match) {
    const parts = match.or.map(namesOf);
    return { equals: parts.flatMap((p) => p.equals), prefixes: parts.flatMap((p) => p.prefixes) };
  }
  return { equals: [], prefixes: [] };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
