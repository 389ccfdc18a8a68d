import type { HeaderLookup } from '../types';

/**
 * How long a provider says to hold off, from its response headers: OpenAI's `x-ratelimit-remaining-requests` /
 * `-tokens` at 0, and on a 429 its `retry-after-ms` or `retry-after`. Undefined when it says nothing of the kind:
 * providers that send no such headers are still covered by the configured limits.
 *
 * `x-ratelimit-reset-*` (durations such as `1m30s`, `850ms`) is the time until the limit is back to full. OpenAI's
 * limits refill continuously, so with no request left, the next one fits after one request's share of it:
 * reset / `x-ratelimit-limit-requests` (about 120 ms at 500 RPM, not the 60 s a full refill takes). Tokens: how many
 * the next request needs is not known here, so a spent token limit pauses until its reset (a pause longer than a
 * request may wait sends it to a fallback at once; `UPSTREAM_TPM` is the precise tool for tokens).
 */
export function pauseFrom(status: number | undefined, headers: HeaderLookup | undefined): number | undefined {
  if (!headers) return undefined;
  const waits: number[] = [];
  for (const kind of ['requests', 'tokens'] as const) {
    const remaining = headers.get(`x-ratelimit-remaining-${kind}`);
    const reset = duration(headers.get(`x-ratelimit-reset-${kind}`));
    if (remaining === null || Number(remaining) > 0 || reset === undefined) continue;
    const limit = Number(headers.get(`x-ratelimit-limit-${kind}`));
    waits.push(kind === 'requests' && limit >= 1 ? Math.ceil(reset / limit) : reset);
  }
  if (status === 429) {
    const ms = Number(headers.get('retry-after-ms'));
    const seconds = Number(headers.get('retry-after'));
    if (ms > 0) waits.push(ms);
    else if (seconds > 0) waits.push(seconds * 1000);
  }
  return waits.length ? Math.max(...waits) : undefined;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** OpenAI's reset durations: `6m0s`, `1.5s`, `850ms`, `20ms`; a plain number is seconds. */
function duration(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  let total = 0;
  let matched = '';
  for (const [part, amount = '', unit = ''] of value.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * (UNIT_MS[unit] ?? 0);
    matched += part;
  }
  return matched === value.trim() && matched ? Math.ceil(total) : undefined;
}
