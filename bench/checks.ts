import { backToIdle, DIRECT, PEER, perStream, type Results, row } from './report';
import { fmtCount, fmtMs, type Measured } from './stats';

/**
 * Issue 15's targets, as ratios within this one run (never a timed test): met, NOT met, or not judged when a
 * number it needs is missing or counts failures.
 */
interface Check {
  readonly goal: string;
  /** The measured side, or undefined when it cannot be judged. */
  readonly measured: string | undefined;
  /**
   * `cost`: not a target, a price shown (what a feature that can be turned off costs). `floor`: not a target either,
   * where the runtime's floor (bench/floor-proxy.ts) stands, so the rest of the gap to direct reads as ours.
   */
  readonly met: boolean | 'cost' | 'floor';
}

const PROXY = 'proxy (ui)';

export function printChecks(results: Results): void {
  const checks = [
    ...overheadChecks(results),
    ...loadChecks(results),
    ...featureCosts(results),
    ...floorComparisons(results),
  ];
  console.log(`\nIssue 15's targets for ${PROXY} (the peer gateway: Portkey):`);
  for (const check of checks) {
    const verdict =
      check.measured === undefined
        ? 'not judged'
        : check.met === 'cost' || check.met === 'floor'
          ? check.met
          : check.met
            ? 'met'
            : 'NOT met';
    console.log(
      `  ${verdict.padEnd(10)}  ${check.goal}: ${check.measured ?? 'a number is missing or has errors'}`,
    );
  }
}

/** Only clean measurements are judged. */
function clean<M extends Measured>(m: M | undefined): M | undefined {
  return m && m.errors === 0 ? m : undefined;
}

function overheadChecks(results: Results): Check[] {
  const direct = clean(row(results, DIRECT)?.a);
  const proxy = clean(row(results, PROXY)?.a);
  const both = direct && proxy;
  const p50 = both ? proxy.ttft.p50 - direct.ttft.p50 : Number.NaN;
  const p99 = both ? proxy.ttft.p99 - direct.ttft.p99 : Number.NaN;
  return [
    { goal: '1 client: TTFT p50 ≤ direct + 0.5 ms', measured: both && `+${fmtMs(p50)} ms`, met: p50 <= 0.5 },
    { goal: '1 client: TTFT p99 ≤ direct + 2 ms', measured: both && `+${fmtMs(p99)} ms`, met: p99 <= 2 },
  ];
}

function loadChecks(results: Results): Check[] {
  const s = results.settings;
  const direct = row(results, DIRECT);
  const proxy = row(results, PROXY);
  const peerB = clean(row(results, PEER)?.b);
  const [directB, proxyB] = [clean(direct?.b), clean(proxy?.b)];
  const [directC, proxyC] = [clean(direct?.c), clean(proxy?.c)];
  const share = directB && proxyB ? proxyB.rps / directB.rps : Number.NaN;
  const overPeer = peerB && proxyB ? proxyB.rps / peerB.rps : Number.NaN;
  const p99 = directC && proxyC ? proxyC.ttft.p99 - directC.ttft.p99 : Number.NaN;
  const kb = proxyC ? perStream(proxyC) : Number.NaN;
  const streams = `${fmtCount(s.streams)} streams`;
  return [
    { goal: `${s.clients} clients: ≥ 5× the peer's req/s`, measured: num(overPeer, 'x'), met: overPeer >= 5 },
    {
      goal: `${s.clients} clients: ≥ 30% of direct's req/s`,
      measured: num(share * 100, '%'),
      met: share >= 0.3,
    },
    { goal: `${streams}: TTFT p99 ≤ direct p99 + 50 ms`, measured: num(p99, ' ms', '+'), met: p99 <= 50 },
    {
      goal: `${streams}: RSS ≤ 64 KB per open stream above idle`,
      measured: proxyC && `${num(kb, ' KB')} (at ${fmtCount(proxyC.peakOpen)} open at once)`,
      met: kb <= 64,
    },
    {
      goal: `${streams}: RSS back within 10% of idle after`,
      measured:
        proxyC &&
        `${fmtCount(proxyC.rss.after / 1024)} MB after, ${fmtCount(proxyC.rss.idle / 1024)} MB idle`,
      met: proxyC !== undefined && backToIdle(proxyC),
    },
  ];
}

/** The cost of each feature that can be turned off: here the reply log (coalescing), off vs default. */
function featureCosts(results: Results): Check[] {
  const on = row(results, PROXY);
  const off = row(results, 'proxy (ui, log off)');
  const [onA, offA, onB, offB] = [clean(on?.a), clean(off?.a), clean(on?.b), clean(off?.b)];
  const ttft = onA && offA ? onA.ttft.p50 - offA.ttft.p50 : Number.NaN;
  const rps = onB && offB ? onB.rps / offB.rps - 1 : Number.NaN;
  return [
    {
      goal: 'cost of the reply log (COALESCE=on, the default) vs off',
      measured: Number.isFinite(ttft + rps)
        ? `TTFT p50 ${ttft >= 0 ? '+' : ''}${fmtMs(ttft)} ms, req/s ${(rps * 100).toFixed(0)}%`
        : undefined,
      met: 'cost',
    },
  ];
}

const FLOOR = 'floor (node:http)';

/** The runtime's floor beside the proxy: what any Node proxy doing this protocol work pays, and what we pay on top. */
function floorComparisons(results: Results): Check[] {
  const [direct, floor, proxy] = [DIRECT, FLOOR, PROXY].map((name) => row(results, name));
  const [directA, floorA, proxyA] = [clean(direct?.a), clean(floor?.a), clean(proxy?.a)];
  const [directB, floorB, proxyB] = [clean(direct?.b), clean(floor?.b), clean(proxy?.b)];
  const [directC, floorC, proxyC] = [clean(direct?.c), clean(floor?.c), clean(proxy?.c)];
  const over = (m: Measured | undefined, base: Measured | undefined, q: 'p50' | 'p99') =>
    m && base ? num(m.ttft[q] - base.ttft[q], ' ms', '+') : undefined;
  const share = (m: Measured | undefined, base: Measured | undefined) =>
    m && base ? num((100 * m.rps) / base.rps, '%') : undefined;
  const both = (a: string | undefined, b: string | undefined) => (a && b ? `${a}; proxy ${b}` : undefined);
  return [
    {
      goal: '1 client: TTFT p50 over direct, floor vs proxy',
      measured: both(over(floorA, directA, 'p50'), over(proxyA, directA, 'p50')),
      met: 'floor',
    },
    {
      goal: `${results.settings.clients} clients: req/s as a share of direct, floor vs proxy`,
      measured: both(share(floorB, directB), share(proxyB, directB)),
      met: 'floor',
    },
    {
      goal: `${fmtCount(results.settings.streams)} streams: TTFT p99 over direct, floor vs proxy`,
      measured: both(over(floorC, directC, 'p99'), over(proxyC, directC, 'p99')),
      met: 'floor',
    },
  ];
}

function num(value: number, unit: string, sign = ''): string | undefined {
  if (!Number.isFinite(value)) return undefined;
  return `${value >= 0 ? sign : ''}${unit === 'x' ? `${value.toFixed(1)}×` : `${fmtMs(value)}${unit}`}`;
}
