import type { Usage } from '../types';
import type { ModelPrice } from './price-table';

/**
 * What a reply cost, in micro-dollars (millionths of a USD), unrounded. Tokens times USD per million tokens is
 * micro-dollars, so no scaling is needed:
 * (prompt − cached) × input + cached × cached input + (completion − reasoning) × output + reasoning × reasoning.
 * Cached and reasoning tokens are parts of the prompt and completion counts, as OpenAI reports them.
 */
export function costMicros(usage: Usage, price: ModelPrice): number {
  const rates = ratesFor(price, usage.promptTokens);
  const prompt = Math.max(0, usage.promptTokens);
  const completion = Math.max(0, usage.completionTokens);
  const cached = clamp(usage.cachedPromptTokens ?? 0, prompt);
  const reasoning = clamp(usage.reasoningTokens ?? 0, completion);
  return (
    (prompt - cached) * rates.input +
    cached * rates.cachedInput +
    (completion - reasoning) * rates.output +
    reasoning * rates.reasoning
  );
}

/**
 * The most a request can cost: every prompt token at the full input price (the cache may miss) and every output
 * token it may generate at the dearer of the output and reasoning prices. What a spend budget reserves.
 */
export function worstCaseMicros(price: ModelPrice, promptTokens: number, maxOutputTokens: number): number {
  const rates = ratesFor(price, promptTokens);
  const input = Math.max(rates.input, rates.cachedInput);
  return promptTokens * input + maxOutputTokens * Math.max(rates.output, rates.reasoning);
}

/**
 * Whole micro-dollars for the limiter's integer counters, rounded up: a reply is never free. (The tolerance keeps
 * float noise such as 15.000000000000002 from costing a micro-dollar more.)
 */
export function wholeMicros(micros: number): number {
  return Math.max(0, Math.ceil(micros - 1e-6));
}

/** USD for the log and the finish metadata, to the nano-dollar: enough for the cheapest token, free of float noise. */
export function toUsd(micros: number): number {
  return Math.round(micros * 1_000) / 1e9;
}

interface Rates {
  readonly input: number;
  readonly cachedInput: number;
  readonly output: number;
  readonly reasoning: number;
}

function ratesFor(price: ModelPrice, promptTokens: number): Rates {
  const long = price.longContext;
  if (long && promptTokens > long.aboveInputTokens) {
    // The long-context tier has no reasoning price of its own: thinking is output there too.
    return {
      input: long.input,
      cachedInput: long.cachedInput ?? long.input,
      output: long.output,
      reasoning: long.output,
    };
  }
  return {
    input: price.input,
    cachedInput: price.cachedInput ?? price.input,
    output: price.output,
    reasoning: price.reasoning ?? price.output,
  };
}

function clamp(value: number, max: number): number {
  return Math.min(Math.max(0, value), max);
}
