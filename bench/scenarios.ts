import { setTimeout as sleep } from 'node:timers/promises';
import { type Batch, closeIdleConnections, loop, once, type Target } from './client';
import { addCpu, type CpuMeter, type CpuUse, cpuDuring } from './cpu';
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
   * Warm-up requests per target, 32 at a time, or as many as `warmUpSeconds` allow (checked between batches of
   * 500): until the JIT has optimised the hot paths, so that each target is measured at the speed it keeps. The
   * proxy's CPU per request, batches of 1,000 from a fresh start: 1,761, 1,046, 711, 641, then 540-780 µs (the
   * floor's 761, 381, 235, then 180-290): with the 1,000 this was, the tables read the proxy at twice its steady CPU
   * per request. With 100, a target that also ran the 1,000 streams was measured warmer than one that did not.
   */
  warmUp: Number(process.env.BENCH_WARMUP ?? 5000),
  /** The most a target's warm-up may take: a slow peer (the ai SDK route does ~200 req/s) stops there. */
  warmUpSeconds: Number(process.env.BENCH_WARMUP_SECONDS ?? 12),
  /**
   * Unmeasured requests before each measured half of (a) (one at a time) and of (b) (`clients` at a time). After 35 s
   * idle, the proxy's next 1,000 requests cost 895 µs of CPU each against 590 before and after (page faults 9,353
   * against 3,600: V8 gave memory back while idle, and takes it again); in the bench, where each server waits while
   * the others are measured, (b)'s first half read 1,118-1,259 µs a request and its second 692-817. The floor pays it
   * too, less (a smaller heap). With V8's memory reducer off (server/lifecycle.ts), the first few hundred requests
   * after an idle still cost up to 3.6 times the rest (the young generation and some JIT code grow back).
   */
  primeRequests: {
    a: Number(process.env.BENCH_PRIME_A ?? 100),
    b: Number(process.env.BENCH_PRIME_B ?? 1000),
  },
  /** A request that has not ended by then counts as a timeout (and never as a number). */
  timeoutMs: Number(process.env.BENCH_TIMEOUT_MS ?? 45_000),
} as const;

/** JIT, connection pools: `warmUp` requests, in batches, until they are done or `warmUpSeconds` have passed. */
export async function warmUp(target: Target): Promise<void> {
  const until = performance.now() + SETTINGS.warmUpSeconds * 1000;
  for (let left = SETTINGS.warmUp; left > 0 && performance.now() < until; left -= 500) {
    await loop(target, Math.min(500, left), 32, SETTINGS.timeoutMs);
  }
}

/** What comes before each measured half of (a) or (b), unmeasured: see `SETTINGS.primeRequests`. */
export function prime(target: Target, scenario: 'a' | 'b'): Promise<Batch> {
  const clients = scenario === 'a' ? 1 : SETTINGS.clients;
  return loop(target, SETTINGS.primeRequests[scenario], clients, SETTINGS.timeoutMs);
}

/** (a) 1 client, instant tokens: time to the first token. `share`: this pass's part of the requests. */
export function oneClient(target: Target, share = 1): Promise<Batch> {
  return loop(target, Math.round(SETTINGS.sequential * share), 1, SETTINGS.timeoutMs);
}

/** (b) many concurrent clients, instant tokens: throughput and latency, and the CPU its server (and Redis) spent. */
export async function manyClients(target: Target, meter: CpuMeter, share = 1): Promise<Batch> {
  const count = Math.round(SETTINGS.concurrent * share);
  const [batch, cpu] = await cpuDuring(meter, () =>
    loop(target, count, SETTINGS.clients, SETTINGS.timeoutMs),
  );
  return { ...batch, cpu };
}

/**
 * Runs `run` over the targets in two passes, in order and then in reverse, each with half the requests, and measures
 * each target's two halves together. A machine whose speed drifts during the run (a shared host) then favours no
 * target for its place in the order: in one order only, the later targets came out up to 30% slower. Each half
 * follows a few requests of its own kind that are not measured (`prime`): a server that sat idle while the others
 * were measured has given memory back (V8's memory reducer), and takes its first requests at a cost it does not keep
 * (see `SETTINGS.primeRequests`).
 */
export async function bothOrders(
  names: readonly string[],
  run: (name: string, share: number) => Promise<Batch>,
  primeFirst: (name: string) => Promise<unknown>,
): Promise<Map<string, Measured>> {
  const batches = new Map<string, Batch[]>(names.map((name) => [name, []]));
  for (const order of [names, [...names].reverse()]) {
    for (const name of order) {
      await primeFirst(name);
      batches.get(name)?.push(await run(name, 0.5));
    }
  }
  return new Map(
    [...batches].map(([name, halves]) => [
      name,
      measure(
        halves.flatMap((half) => half.outcomes),
        halves.reduce((sum, half) => sum + half.seconds, 0),
        halves.every((half) => half.cpu)
          ? halves.map((half) => half.cpu as CpuUse).reduce(addCpu)
          : undefined,
      ),
    ]),
  );
}

export interface OpenStreams extends Measured {
  /** The most streams the client had open at once (headers in, not yet ended). */
  readonly peakOpen: number;
  /** Resident memory of the serving process, KB: idle before, peak while open, after they ended. */
  readonly rss: { readonly idle: number; readonly peak: number; readonly after: number };
  /**
   * The serving process's CPU over the scenario ÷ the tokens it relayed (streams that ended well × tokens each): a
   * token's cost and its share of its stream's (the request, its limits, its connection; about 15 of the proxy's 83
   * µs in one run, 5 of the floor's 36).
   */
  readonly cpuPerToken: number;
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
  const [outcomes, cpu] = await cpuDuring({ server: pid }, () =>
    Promise.all(Array.from({ length: streams }, () => once(target, timeoutMs, watch))),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await control(fake, 'instant');
  const after = await settledRss(pid, idle);
  const tokens = outcomes.filter((outcome) => outcome.ok).length * pacedTokens;
  return {
    ...measure(outcomes, seconds),
    peakOpen,
    rss: { idle, peak, after },
    cpuPerToken: cpu.server / tokens,
  };
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
