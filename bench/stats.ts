import type { Outcome } from './client';
import type { CpuUse } from './cpu';

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean };
}

export const ms = (n: number) => `${n.toFixed(2)} ms`;

/** Milliseconds with as many digits as they deserve: 0.123, 2.48, 31.2, 2,517. */
export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (n >= 1000) return Math.round(n).toLocaleString('en-US');
  const digits = n.toPrecision(3);
  return digits.includes('.') ? digits.replace(/\.?0+$/, '') : digits; // 0.500 → 0.5, but 290 stays 290
}

export function fmtCount(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** A ratio to a reference, "2.4×"; "–" when either is missing. */
export function fmtRatio(value: number, reference: number): string {
  const ratio = value / reference;
  if (!Number.isFinite(ratio)) return '–';
  return `${ratio >= 10 ? ratio.toFixed(0) : ratio >= 1 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

/** The successful requests' timings, and every failure counted by kind: no number silently includes a failure. */
export interface Measured {
  readonly requests: number;
  readonly errors: number;
  readonly errorKinds: Readonly<Record<string, number>>;
  readonly ttft: Summary;
  readonly total: Summary;
  /** Successful requests per second over the batch (loops only). */
  readonly rps: number;
  /** CPU µs per successful request, by process, where the batch was metered. */
  readonly cpu?: CpuUse;
}

export function measure(outcomes: readonly Outcome[], seconds = Number.NaN, cpu?: CpuUse): Measured {
  const errorKinds: Record<string, number> = {};
  const ttft: number[] = [];
  const total: number[] = [];
  for (const outcome of outcomes) {
    if (outcome.ok) {
      ttft.push(outcome.ttft);
      total.push(outcome.total);
    } else {
      errorKinds[outcome.error] = (errorKinds[outcome.error] ?? 0) + 1;
    }
  }
  return {
    requests: outcomes.length,
    errors: outcomes.length - ttft.length,
    errorKinds,
    ttft: summarize(ttft),
    total: summarize(total),
    rps: ttft.length / seconds,
    ...(cpu && { cpu: perRequest(cpu, ttft.length) }),
  };
}

/** Per successful request; NaN when none succeeded (a failure's CPU has no request to go with). */
function perRequest(cpu: CpuUse, requests: number): CpuUse {
  return requests > 0
    ? { server: cpu.server / requests, redis: cpu.redis / requests }
    : { server: Number.NaN, redis: Number.NaN };
}

export function describeErrors(m: Measured): string {
  return Object.entries(m.errorKinds)
    .map(([kind, count]) => `${count}× ${kind}`)
    .join(', ');
}
