import { DIRECT, type Results, type Row } from './report';
import { fmtCount, fmtMs, type Measured } from './stats';

/**
 * docs/bench.svg, written by hand (no browser, no library): one panel per scenario, one group of bars per
 * target, each panel on its own linear scale with the values printed.
 */
interface Bar {
  readonly value: number;
  readonly text: string;
  /** The lighter bar under the main one (p99 under p50). */
  readonly faint?: boolean;
}

interface Panel {
  readonly title: string;
  readonly groups: readonly { readonly name: string; readonly bars: readonly Bar[] }[];
}

const WIDTH = 860;
const LABEL = 190;
const BAR_AREA = 560;
const BAR = 12;
const GAP = 10;

export function chartSvg(results: Results): string {
  const s = results.settings;
  const panels: Panel[] = [
    latencyPanel(results, '1 client, instant tokens: time to first token (ms), p50 and p99', (r) => r.a),
    {
      title: `${s.clients} clients, instant tokens: requests per second`,
      groups: rowsWith(results, (r) => r.b).map(([name, b]) => ({
        name,
        bars: [{ value: b.rps, text: `${fmtCount(b.rps)} req/s` }],
      })),
    },
    latencyPanel(
      results,
      `${fmtCount(s.streams)} open streams, a token every ${s.tokenDelayMs} ms: time to first token (ms), p50 and p99`,
      (r) => r.c,
    ),
  ];
  let y = 56;
  const parts: string[] = [];
  for (const panel of panels) {
    const drawn = drawPanel(panel, y);
    parts.push(drawn.svg);
    y = drawn.bottom + 24;
  }
  const store = results.store === 'redis' ? 'limiter on Redis' : 'limiter in memory (no Redis)';
  const title = `ai-chat-proxy, npm run bench: servers on Node ${results.node}, ${store}`;
  const note = `${s.sequential} requests from 1 client; ${s.concurrent} from ${s.clients} clients; ${fmtCount(s.streams)} streams of ${s.pacedTokens} tokens. (!) marks a target with failed requests (left out of its bars).`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="system-ui, sans-serif" font-size="12">`,
    `<title>${xml(title)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="16" y="28" font-size="16" font-weight="bold">${xml(title)}</text>`,
    ...parts,
    `<text x="16" y="${y - 8}" font-size="11" fill="#555">${xml(note)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** The targets measured in a scenario, by name, "(!)" marking those with failed requests. */
function rowsWith<M extends { readonly errors: number }>(
  results: Results,
  pick: (r: Row) => M | undefined,
): (readonly [string, M])[] {
  return results.rows.flatMap((r) => {
    const m = pick(r);
    return m === undefined ? [] : [[m.errors > 0 ? `${r.name} (!)` : r.name, m] as const];
  });
}

function latencyPanel(results: Results, title: string, pick: (r: Row) => Measured | undefined): Panel {
  return {
    title,
    groups: rowsWith(results, pick).map(([name, m]) => ({
      name,
      bars: [
        { value: m.ttft.p50, text: `p50 ${fmtMs(m.ttft.p50)}` },
        { value: m.ttft.p99, text: `p99 ${fmtMs(m.ttft.p99)}`, faint: true },
      ],
    })),
  };
}

function drawPanel(panel: Panel, top: number): { svg: string; bottom: number } {
  const max = Math.max(
    ...panel.groups.flatMap((g) => g.bars.map((b) => b.value)).filter(Number.isFinite),
    1e-9,
  );
  const out = [`<text x="16" y="${top}" font-weight="bold">${xml(panel.title)}</text>`];
  let y = top + 12;
  for (const group of panel.groups) {
    const height = group.bars.length * BAR;
    out.push(`<text x="${LABEL - 8}" y="${y + height / 2 + 4}" text-anchor="end">${xml(group.name)}</text>`);
    group.bars.forEach((bar, i) => {
      const w = Number.isFinite(bar.value) ? Math.max(1, (bar.value / max) * BAR_AREA) : 0;
      const by = y + i * BAR;
      const opacity = bar.faint ? ' fill-opacity="0.45"' : '';
      out.push(
        `<rect x="${LABEL}" y="${by}" width="${w.toFixed(1)}" height="${BAR - 2}" fill="${colour(group.name)}"${opacity}/>`,
      );
      out.push(`<text x="${LABEL + w + 6}" y="${by + BAR - 3}" font-size="11">${xml(bar.text)}</text>`);
    });
    y += height + GAP;
  }
  return { svg: out.join('\n'), bottom: y };
}

function colour(name: string): string {
  if (name === DIRECT) return '#7f8c8d';
  if (name.startsWith('proxy')) return '#2e6fd8';
  if (name.startsWith('floor')) return '#27ae60';
  return '#e07b24';
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
