import { estimateTokens } from './token-estimate';

/** The tokens of one text, as the model's tokenizer counts them (or as near as the counter gets). */
export type CountTokens = (text: string) => number;

/**
 * Loads a real tokenizer. The Node server supplies one (`gpt-tokenizer`, imported on first use: its vocabulary takes
 * ~400 ms to load, and must never reach the edge bundle); without one, the calibrated estimate counts.
 */
export type LoadTokenCounter = () => Promise<CountTokens>;

/**
 * The counter to use, loaded once. A tokenizer that fails to load falls back to the estimate rather than failing
 * requests: the caps it serves are a cost guard, and the estimate is within a few percent for ordinary text.
 */
export function lazyTokenCounter(load: LoadTokenCounter | undefined): () => Promise<CountTokens> {
  if (!load) return () => Promise.resolve(estimateTokens);
  let loaded: Promise<CountTokens> | undefined;
  return () => {
    loaded ??= load().catch(() => estimateTokens);
    return loaded;
  };
}
