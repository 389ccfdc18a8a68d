import type { OpenStreams, SETTINGS } from './scenarios';
import { describeErrors, fmtCount, fmtMs, fmtRatio, type Measured, type Summary } from './stats';
import { alignedTable, markdownTable } from './table';

/** One run's numbers, as the tables, the checks and the chart read them. */
export interface Row {
  readonly name: string;
  readonly a?: Measured;
  readonly b?: Measured;
  readonly c?: OpenStreams;
}

export interface Results {
  readonly node: string;
  readonly clientNode: string;
  readonly store: 'redis' | 'memory';
  readonly settings: typeof SETTINGS;
  readonly rows: readonly Row[];
  /** One round trip to Redis (PING, ms), where the proxy is limited on Redis: bench/round-trip.ts. */
  readonly redisRoundTrip?: Summary;
  readonly seconds: number;
}

export const DIRECT = 'direct';
/** The peer gateway issue 15 measures against: Portkey. The ai SDK route is the other peer, an app's own route. */
export const PEER = 'portkey (peer gateway)';

export function row(results: Results, name: string): Row | undefined {
  return results.rows.find((r) => r.name === name);
}

/** A row with failures is marked where its numbers are, and its failures are listed under the table. */
const label = (name: string, m: Measured) => (m.errors > 0 ? `${name} (!)` : name);
const okOf = (m: Measured) => `${m.requests - m.errors}/${m.requests}`;
const pair = (a: number, b: number) => `${fmtMs(a)} / ${fmtMs(b)}`;
const plus = (value: number, reference: number | undefined) =>
  reference === undefined || reference === value || !Number.isFinite(value - reference)
    ? '–'
    : `${fmtRatio(value, reference)} (${value >= reference ? '+' : ''}${fmtMs(value - reference)})`;

export function printTables(results: Results): void {
  const s = results.settings;
  const direct = row(results, DIRECT);
  const store = results.store === 'redis' ? 'limiter on Redis' : 'limiter IN MEMORY (no Redis)';
  console.log(`\nServers on Node ${results.node}, ${store}. Times in ms; "×" is the ratio to direct.`);
  section(results, `(a) 1 client, instant tokens: first token`, (r) => r.a, [
    ['ok', okOf],
    ['TTFT p50', (m) => fmtMs(m.ttft.p50)],
    ['TTFT p99', (m) => fmtMs(m.ttft.p99)],
    ['p50 vs direct', (m) => plus(m.ttft.p50, direct?.a?.ttft.p50)],
    ['p99 vs direct', (m) => plus(m.ttft.p99, direct?.a?.ttft.p99)],
  ]);
  const peer = row(results, PEER)?.b?.rps ?? Number.NaN;
  section(results, `(b) ${s.clients} clients, instant tokens: throughput`, (r) => r.b, [
    ['ok', okOf],
    ['req/s', (m) => fmtCount(m.rps)],
    ['vs direct', (m) => fmtRatio(m.rps, direct?.b?.rps ?? Number.NaN)],
    ['vs peer', (m) => fmtRatio(m.rps, peer)],
    ['TTFT p50 / p99', (m) => pair(m.ttft.p50, m.ttft.p99)],
    ['total p50 / p99', (m) => pair(m.total.p50, m.total.p99)],
    ['CPU µs/req: server · Redis', (m) => cpuCell(m)],
  ]);
  section(
    results,
    `(c) ${fmtCount(s.streams)} open streams, a token every ${s.tokenDelayMs} ms`,
    (r) => r.c,
    [
      ['ok', okOf],
      ['peak open', (m) => fmtCount(m.peakOpen)],
      ['TTFT p50', (m) => fmtMs(m.ttft.p50)],
      ['TTFT p99', (m) => fmtMs(m.ttft.p99)],
      ['p99 vs direct', (m) => plus(m.ttft.p99, direct?.c?.ttft.p99)],
      ['RSS MB idle → peak → after', (m) => rssLine(m)],
      ['KB/open stream', (m) => fmtCount(perStream(m))],
      ['back to idle', (m) => (backToIdle(m) ? 'yes' : 'NO')],
      ['CPU µs/token', (m) => fmtCount(m.cpuPerToken)],
    ],
  );
}

function section<M extends Measured>(
  results: Results,
  title: string,
  pick: (r: Row) => M | undefined,
  columns: readonly (readonly [string, (m: M) => string])[],
): void {
  const measured = results.rows.flatMap((r) => {
    const m = pick(r);
    return m ? [[r.name, m] as const] : [];
  });
  const body = measured.map(([name, m]) => [label(name, m), ...columns.map(([, cell]) => cell(m))]);
  console.log(`\n${title}\n${alignedTable(['target', ...columns.map(([h]) => h)], body)}`);
  for (const [name, m] of measured) {
    if (m.errors > 0) console.log(`  (!) ${name}: ${describeErrors(m)}: left out of its numbers.`);
  }
}

/** The serving process's CPU per request, and Redis's for a proxy on Redis (the limiter, the reply log). */
const cpuCell = (m: Measured) =>
  m.cpu
    ? `${fmtCount(m.cpu.server)}${Number.isFinite(m.cpu.redis) ? ` · ${fmtCount(m.cpu.redis)}` : ''}`
    : '–';

const mb = (kb: number) => (kb / 1024).toFixed(0);
const rssLine = (m: OpenStreams) => `${mb(m.rss.idle)} → ${mb(m.rss.peak)} → ${mb(m.rss.after)}`;
/**
 * KB of RSS above idle per open stream: peak minus idle, over the most streams open at once. A server that falls
 * behind (CPU-bound) never holds all of them open: the ones it has finished are not in its peak.
 */
export const perStream = (m: OpenStreams) => (m.rss.peak - m.rss.idle) / Math.max(1, m.peakOpen);
export const backToIdle = (m: OpenStreams) => m.rss.after <= m.rss.idle * 1.1;

/** The README's table: one row per target, every scenario side by side. */
export function printMarkdown(results: Results): void {
  const s = results.settings;
  const headers = [
    'target',
    '1 client: TTFT p50 / p99',
    `${s.clients} clients: req/s (× direct)`,
    `${s.clients} clients: total p50 / p99`,
    `${s.clients} clients: CPU µs/req (server · Redis)`,
    `${fmtCount(s.streams)} streams: TTFT p50 / p99`,
    'RSS per open stream',
    'CPU µs/token',
  ];
  const direct = row(results, DIRECT);
  const body = results.rows.map((r) => {
    const errors = (r.a?.errors ?? 0) + (r.b?.errors ?? 0) + (r.c?.errors ?? 0);
    const name = r.name.startsWith('proxy') ? `**${r.name}**` : r.name;
    return [
      errors > 0 ? `${name} ⚠ ${errors} errors` : name,
      r.a ? `${pair(r.a.ttft.p50, r.a.ttft.p99)} ms` : '',
      r.b ? `${fmtCount(r.b.rps)} (${fmtRatio(r.b.rps, direct?.b?.rps ?? Number.NaN)})` : '',
      r.b ? `${pair(r.b.total.p50, r.b.total.p99)} ms` : '',
      r.b ? cpuCell(r.b) : '',
      r.c ? `${pair(r.c.ttft.p50, r.c.ttft.p99)} ms` : '',
      r.c && r.name !== DIRECT ? `${rssKbCell(r.c)}` : '',
      r.c ? fmtCount(r.c.cpuPerToken) : '',
    ];
  });
  console.log(
    `\nREADME table (markdown), servers on Node ${results.node}, ${results.store} limiter store:\n`,
  );
  console.log(markdownTable(headers, body));
}

const rssKbCell = (m: OpenStreams) =>
  `${fmtCount(perStream(m))} KB (${mb(m.rss.idle)} → ${mb(m.rss.peak)} MB at ${fmtCount(m.peakOpen)} open; ${backToIdle(m) ? 'back to idle' : `${mb(m.rss.after)} MB after`})`;
