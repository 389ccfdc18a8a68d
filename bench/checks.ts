import { backToIdle, DIRECT, PEER, perStream, type Results, row } from './report';
import { fmtCount, fmtMs, type Measured } from './stats';

/**
 * Issue 15's targets, as ratios within this one run (never a timed test): met, NOT met, or not judged when a
 * number it needs is missing or counts failures. Each target is judged for the runtime's floor too
 * (bench/floor-proxy.ts: the protocol work alone, on the same runtime): a target the floor misses as well is out of
 * any Node proxy's reach on this machine, and the proxy's distance from the floor is ours.
 */
interface Check {
  readonly goal: string;
  /** The measured side, or undefined when it cannot be judged. */
  readonly measured: string | undefined;
  /** `cost`: not a target, a price shown (what a feature that can be turned off costs). */
  readonly met: boolean | 'cost';
}

const PROXY = 'proxy (ui)';
const FLOOR = 'floor (node:http)';

export function printChecks(results: Results): void {
  const proxy = targetChecks(results, PROXY);
  const floor = targetChecks(results, FLOOR);
  console.log(`\nIssue 15's targets for ${PROXY} (the peer gateway: Portkey), and for the runtime's floor:`);
  proxy.forEach((check, i) => {
    const atFloor = floor[i];
    const floorSide =
      atFloor?.measured === undefined ? 'not judged' : `${atFloor.measured}, ${verdict(atFloor)}`;
    console.log(`  ${verdict(check).padEnd(10)}  ${check.goal}: ${describe(check)} (floor: ${floorSide})`);
  });
  for (const check of [...featureCosts(results), ...roundTripCost(results), ...cpuCosts(results)])
    console.log(`  ${verdict(check).padEnd(10)}  ${check.goal}: ${describe(check)}`);
}

/**
 * The platform's share of the first token at 1 client: a proxy limited on Redis waits for one round trip to it before
 * the upstream is asked, so the floor's overhead plus that round trip (medians, both) is about the least such a proxy
 * can add there. Not judged when the proxy ran on Redis but the round trip could not be measured.
 */
function roundTripCost(results: Results): Check[] {
  if (results.store !== 'redis') return [];
  const trip = results.redisRoundTrip;
  const direct = clean(row(results, DIRECT)?.a);
  const floor = clean(row(results, FLOOR)?.a);
  const least = trip && direct && floor ? floor.ttft.p50 - direct.ttft.p50 + trip.p50 : Number.NaN;
  const bound = Number.isFinite(least) ? `: the floor plus one, p50, is +${fmtMs(least)} ms over direct` : '';
  return [
    {
      goal: 'a round trip to Redis (PING, one at a time), which every admission waits for',
      measured: trip && `p50 ${fmtMs(trip.p50)} ms, p99 ${fmtMs(trip.p99)} ms${bound}`,
      met: 'cost',
    },
  ];
}

/**
 * Whose CPU it is: the proxy's per request (32 clients) and per token (the open streams: a stream's CPU ÷ its tokens)
 * against the floor's on the same runtime. The floor's is the runtime's; the excess is ours; Redis's is the limiter's
 * and the reply log's, spent outside the proxy's process.
 */
function cpuCosts(results: Results): Check[] {
  const [proxy, floor] = [row(results, PROXY), row(results, FLOOR)];
  const [proxyB, floorB] = [clean(proxy?.b)?.cpu, clean(floor?.b)?.cpu];
  const ours = (mine = Number.NaN, runtime = Number.NaN) =>
    Number.isFinite(mine + runtime)
      ? `${fmtCount(mine)} µs, the floor ${fmtCount(runtime)} µs: ${fmtCount(mine - runtime)} µs ours`
      : undefined;
  const perRequest = ours(proxyB?.server, floorB?.server);
  const redis = proxyB && Number.isFinite(proxyB.redis) ? `, and Redis ${fmtCount(proxyB.redis)} µs` : '';
  return [
    {
      goal: `CPU per request, ${results.settings.clients} clients`,
      measured: perRequest && `${perRequest}${redis}`,
      met: 'cost',
    },
    {
      goal: 'CPU per token, open streams (a stream ÷ its tokens)',
      measured: ours(clean(proxy?.c)?.cpuPerToken, clean(floor?.c)?.cpuPerToken),
      met: 'cost',
    },
  ];
}

function verdict(check: Check): string {
  if (check.measured === undefined) return 'not judged';
  if (check.met === 'cost') return 'cost';
  return check.met ? 'met' : 'NOT met';
}

function describe(check: Check): string {
  return check.measured ?? 'a number is missing or has errors';
}

/** Only clean measurements are judged. */
function clean<M extends Measured>(m: M | undefined): M | undefined {
  return m && m.errors === 0 ? m : undefined;
}

/** Every target, judged for one row of the table (the proxy, or the floor). */
function targetChecks(results: Results, name: string): Check[] {
  return [...overheadChecks(results, name), ...loadChecks(results, name)];
}

function overheadChecks(results: Results, name: string): Check[] {
  const direct = clean(row(results, DIRECT)?.a);
  const target = clean(row(results, name)?.a);
  const both = direct && target;
  const p50 = both ? target.ttft.p50 - direct.ttft.p50 : Number.NaN;
  const p99 = both ? target.ttft.p99 - direct.ttft.p99 : Number.NaN;
  return [
    { goal: '1 client: TTFT p50 ≤ direct + 0.5 ms', measured: both && `+${fmtMs(p50)} ms`, met: p50 <= 0.5 },
    { goal: '1 client: TTFT p99 ≤ direct + 2 ms', measured: both && `+${fmtMs(p99)} ms`, met: p99 <= 2 },
  ];
}

function loadChecks(results: Results, name: string): Check[] {
  const s = results.settings;
  const direct = row(results, DIRECT);
  const target = row(results, name);
  const peerB = clean(row(results, PEER)?.b);
  const [directB, targetB] = [clean(direct?.b), clean(target?.b)];
  const [directC, targetC] = [clean(direct?.c), clean(target?.c)];
  const share = directB && targetB ? targetB.rps / directB.rps : Number.NaN;
  const overPeer = peerB && targetB ? targetB.rps / peerB.rps : Number.NaN;
  const p99 = directC && targetC ? targetC.ttft.p99 - directC.ttft.p99 : Number.NaN;
  const kb = targetC ? perStream(targetC) : Number.NaN;
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
      measured: targetC && `${num(kb, ' KB')} (at ${fmtCount(targetC.peakOpen)} open at once)`,
      met: kb <= 64,
    },
    {
      goal: `${streams}: RSS back within 10% of idle after`,
      measured:
        targetC &&
        `${fmtCount(targetC.rss.after / 1024)} MB after, ${fmtCount(targetC.rss.idle / 1024)} MB idle`,
      met: targetC !== undefined && backToIdle(targetC),
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

function num(value: number, unit: string, sign = ''): string | undefined {
  if (!Number.isFinite(value)) return undefined;
  return `${value >= 0 ? sign : ''}${unit === 'x' ? `${value.toFixed(1)}×` : `${fmtMs(value)}${unit}`}`;
}
