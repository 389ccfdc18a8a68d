import { Agent, request } from 'node:http';
import type { CpuUse } from './cpu';

/**
 * The bench's client: plain `node:http` with keep-alive (cheaper than `fetch`, so more of the machine is left to
 * the servers measured). A request's "first token" is the first body byte that carries a token, not its headers
 * nor a `start` event sent before the model answered.
 */
export type Wire = 'openai-sse' | 'ui' | 'text';

export interface Target {
  readonly name: string;
  readonly url: string;
  readonly wire: Wire;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: () => string;
}

export type Outcome =
  | { readonly ok: true; readonly ttft: number; readonly total: number }
  | { readonly ok: false; readonly error: string };

/** Where the first token shows in the text read so far. */
const FIRST_TOKEN: Record<Wire, RegExp> = {
  'openai-sse': /"content":"[^"]/,
  ui: /"type":"text-delta"/,
  text: /\S/,
};

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

/**
 * Closes the kept-alive connections. Before a scenario that opens many requests in one tick: the agent would hand
 * them the idle connections at once, before this process has read a close a server sent meanwhile (Node's server
 * closes an idle one after 5 s): each such request then fails with `socket hang up`, 32 of them in one run (the
 * 32 clients' connections). Not the server's fault, so not counted against it.
 */
export function closeIdleConnections(): void {
  agent.destroy();
}

export interface Watch {
  /** Called once the response headers arrived, and again when it ended (or failed). */
  readonly opened?: () => void;
  readonly closed?: () => void;
}

export function once(target: Target, timeoutMs: number, watch: Watch = {}): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let open = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (open) watch.closed?.();
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, error: 'timeout' });
    }, timeoutMs);
    const req = request(target.url, { method: 'POST', headers: target.headers, agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return finish({ ok: false, error: `HTTP ${res.statusCode}` });
      }
      open = true;
      watch.opened?.();
      readTokens(res, target.wire, started, finish);
    });
    req.on('error', (error) => finish({ ok: false, error: error.message }));
    req.end(target.body());
  });
}

function readTokens(
  res: NodeJS.ReadableStream,
  wire: Wire,
  started: number,
  finish: (outcome: Outcome) => void,
): void {
  let ttft = Number.NaN;
  let seen = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    if (!Number.isNaN(ttft)) return;
    seen = seen.slice(-64) + chunk; // a marker may straddle two chunks
    if (FIRST_TOKEN[wire].test(seen)) ttft = performance.now() - started;
  });
  res.on('end', () => {
    const total = performance.now() - started;
    finish(Number.isNaN(ttft) ? { ok: false, error: 'no token' } : { ok: true, ttft, total });
  });
  res.on('error', (error: Error) => finish({ ok: false, error: error.message }));
}

export interface Batch {
  readonly outcomes: Outcome[];
  readonly seconds: number;
  /** The CPU its server (and Redis, for a proxy on Redis) spent on the batch, where it was metered (bench/cpu.ts). */
  readonly cpu?: CpuUse;
}

/** `count` requests from `concurrency` clients, each sending its next request when the last one ended. */
export async function loop(
  target: Target,
  count: number,
  concurrency: number,
  timeoutMs: number,
): Promise<Batch> {
  const outcomes: Outcome[] = [];
  let next = 0;
  const started = performance.now();
  const client = async () => {
    while (next < count) {
      next++;
      outcomes.push(await once(target, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return { outcomes, seconds: (performance.now() - started) / 1000 };
}
