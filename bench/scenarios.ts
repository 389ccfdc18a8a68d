import { setTimeout as sleep } from 'node:timers/promises';
import { type Batch, closeIdleConnections, loop, once, type Target } from './client';
import { control, rssKb, type Server } from './processes';
import { type Measured, measure } from './stats';

/** The three scenarios of issue 15, each bounded in requests and in time. */
export const SETTINGS = {
  /** (a) requests from 1 client. */
  sequential: Number(process.env.BENCH_SEQUENTIAL ?? 300),
  /** (b) requests from `clients` concurrent clients. */
  concurrent: Number(process.env.BENCH_CONCURRENT ?? 1000),
  clients: Number(process.env.BENCH_CLIENTS ?? 32),
  /** (c) streams held open at once, one token every `tokenDelayMs`, `pacedTokens` tokens each. */
  streams: Number(process.env.BENCH_STREAMS ?? 1000),
  tokenDelayMs: Number(process.env.BENCH_PACE_MS ?? 20),
  pacedTokens: Number(process.env.BENCH_PACED_TOKENS ?? 50),
  /**
   * Warm-up requests per target, 32 at a time: enough for the JIT to optimise the hot paths of each process alike.
   * With 100, a target that also ran the 1,000 streams was measured warmer than one that did not (the reply log
   * "cost" -30% in one run, +30% in the next).
   */
  warmUp: Number(process.env.BENCH_WARMUP ?? 1000),
  /** A request that has not ended by then counts as a timeout (and never as a number). */
  timeoutMs: Number(process.env.BENCH_TIMEOUT_MS ?? 45_000),
} as const;

export async function warmUp(target: Target): Promise<void> {
  await loop(target, SETTINGS.warmUp, 32, SETTINGS.timeoutMs); // JIT, connection pools
}

/** (a) 1 client, instant tokens: time to the first token. `share`: this pass's part of the requests. */
export function oneClient(target: Target, share = 1): Promise<Batch> {
  return loop(target, Math.round(SETTINGS.sequential * share), 1, SETTINGS.timeoutMs);
}

/** (b) many concurrent clients, instant tokens: throughput and latency. */
export function manyClients(target: Target, share = 1): Promise<Batch> {
  return loop(target, Math.round(SETTINGS.concurrent * share), SETTINGS.clients, SETTINGS.timeoutMs);
}

/**
 * Runs `run` over the targets in two passes, in order and then in reverse, each with half the requests, and measures
 * each target's two halves together. A machine whose speed drifts during the run (a shared host) then favours no
 * target for its place in the order: in one order only, the later targets came out up to 30% slower.
 */
export async function bothOrders(
  names: readonly string[],
  run: (name: string, share: number) => Promise<Batch>,
): Promise<Map<string, Measured>> {
  const batches = new Map<string, Batch[]>(names.map((name) => [name, []]));
  for (const order of [names, [...names].reverse()]) {
    for (const name of order) batches.get(name)?.push(await run(name, 0.5));
  }
  return new Map(
    [...batches].map(([name, halves]) => [
      name,
      measure(
        halves.flatMap((half) => half.outcomes),
        halves.reduce((sum, half) => sum + half.seconds, 0),
      ),
    ]),
  );
}

export interface OpenStreams extends Measured {
  /** The most streams the client had open at once (headers in, not yet ended). */
  readonly peakOpen: number;
  /** Resident memory of the serving process, KB: idle before, peak while open, after they ended. */
  readonly rss: { readonly idle: number; readonly peak: number; readonly after: number };
}

/** (c) `streams` streams opened at once, paced by the fake upstream; RSS sampled from /proc meanwhile. */
export async function openStreams(target: Target, server: Server, fake: Server): Promise<OpenStreams> {
  const { streams, tokenDelayMs, pacedTokens, timeoutMs } = SETTINGS;
  await control(fake, `paced ${tokenDelayMs} ${streams} ${pacedTokens}`);
  closeIdleConnections(); // 1,000 users arriving: new connections, none a server may be closing right now
  const pid = server.child.pid;
  const idle = rssKb(pid);
  let peak = idle;
  let open = 0;
  let peakOpen = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKb(pid));
  }, 50);
  const watch = {
    opened: () => {
      open++;
      peakOpen = Math.max(peakOpen, open);
    },
    closed: () => {
      open--;
    },
  };
  const started = performance.now();
  const outcomes = await Promise.all(Array.from({ length: streams }, () => once(target, timeoutMs, watch)));
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await control(fake, 'instant');
  const after = await settledRss(pid, idle);
  return { ...measure(outcomes, seconds), peakOpen, rss: { idle, peak, after } };
}

/** RSS once it is back within 10% of idle, or whatever it is after `BENCH_SETTLE_MS` (3 s). */
async function settledRss(pid: number | undefined, idle: number): Promise<number> {
  const deadline = performance.now() + Number(process.env.BENCH_SETTLE_MS ?? 3_000);
  let rss = rssKb(pid);
  while (rss > idle * 1.1 && performance.now() < deadline) {
    await sleep(250);
    rss = rssKb(pid);
  }
  return rss;
}
