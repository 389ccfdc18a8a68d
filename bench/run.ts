import { type ChildProcess, spawn } from 'node:child_process';
import { ms, type Summary, summarize } from './stats';

/**
 * Side by side, in one run: straight to the fake upstream (the limit) and through the proxy (`npm start`'s server).
 * Each runs in its own process; this process is only the client. Bounded in requests and in time.
 */
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 300);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const KEY = 'bench-key';

interface Sample {
  ttft: number;
  total: number;
}

interface Target {
  name: string;
  request: () => Request;
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  try {
    const fakeUrl = await startProcess(children, ['bench/fake-server.ts'], {}, /fake upstream on (\S+)/);
    const proxy = (env: Record<string, string>) =>
      startProcess(
        children,
        ['server/main.ts'],
        {
          OPENAI_API_KEY: KEY,
          OPENAI_BASE_URL: fakeUrl,
          PORT: '0',
          CHAT_MODEL: 'bench-model',
          // The real request path, limiter included, on the local Redis; limits high enough never to refuse.
          REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
          RATE_LIMIT_PREFIX: `bench-${process.pid}`,
          RATE_LIMIT_REQUESTS: '1000000000',
          TOKEN_BUDGET: '1000000000000',
          // Every bench client comes from one address: without this the stream cap (4 by default) would refuse most.
          MAX_STREAMS_PER_CALLER: '1000000000',
          ...env,
        },
        /listening on (\S+)/,
      );
    // The defaults (the reply log on: coalescing, recorded in Redis), every reply-log feature off, and the cache on.
    const proxyUrl = await proxy({});
    const plainProxyUrl = await proxy({ COALESCE: 'off' });
    const cachingProxyUrl = await proxy({ CACHE_TTL: '1 h', CACHE_SCOPE: 'global' });
    const peerUrl = await startProcess(
      children,
      ['bench/peer-ai-sdk.ts'],
      { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: fakeUrl },
      /peer listening on (\S+)/,
    );
    // Every request asks something else (as different users do), so none is coalesced with another or cached,
    // except on the cache target, which asks the same thing every time.
    let asked = 0;
    const prompt = () => `Tell me about foxes (${asked++}).`;
    const body = () => ({ messages: [{ role: 'user', content: prompt() }] });
    // What useChat sends: the UI targets (ours and the peer's) get exactly this.
    const uiBody = (text = prompt()) =>
      JSON.stringify({
        id: 'bench',
        messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text }] }],
        trigger: 'submit-message',
      });
    const targets: Target[] = [
      {
        name: 'direct',
        request: () =>
          new Request(`${fakeUrl}/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
            body: JSON.stringify({
              ...body(),
              model: 'bench-model',
              stream: true,
              stream_options: { include_usage: true },
            }),
          }),
      },
      {
        name: 'proxy (ui)',
        request: () =>
          new Request(new URL('/api/chat', proxyUrl), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: uiBody(),
          }),
      },
      {
        name: 'proxy (ui, log off)',
        request: () =>
          new Request(new URL('/api/chat', plainProxyUrl), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: uiBody(),
          }),
      },
      {
        name: 'proxy (ui, cache hit)',
        request: () =>
          new Request(new URL('/api/chat', cachingProxyUrl), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: uiBody('Tell me about foxes.'),
          }),
      },
      {
        name: 'ai-sdk route (peer)',
        request: () =>
          new Request(peerUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: uiBody(),
          }),
      },
      {
        name: 'proxy (text)',
        request: () =>
          new Request(new URL('/api/chat', proxyUrl), {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'text/plain' },
            body: JSON.stringify(body()),
          }),
      },
    ];
    for (const target of targets) await runMany(target, 50, 4); // warm-up: JIT, connection pools
    const results: Record<string, { seq: Summary; seqTtft: Summary; conc: Summary; rps: number }> = {};
    for (const target of targets) {
      const seq = await runMany(target, SEQUENTIAL, 1);
      const started = performance.now();
      const conc = await runMany(target, CONCURRENT, CONCURRENCY);
      const rps = CONCURRENT / ((performance.now() - started) / 1000);
      results[target.name] = {
        seq: summarize(seq.map((s) => s.total)),
        seqTtft: summarize(seq.map((s) => s.ttft)),
        conc: summarize(conc.map((s) => s.total)),
        rps,
      };
    }
    report(results);
  } finally {
    for (const child of children) child.kill('SIGTERM');
  }
}

async function runMany(target: Target, count: number, concurrency: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      samples.push(await once(target));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return samples;
}

async function once(target: Target): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(target.request());
  if (!res.ok || !res.body) throw new Error(`${target.name}: HTTP ${res.status}`);
  const reader = res.body.getReader();
  let ttft = Number.NaN;
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
    if (Number.isNaN(ttft)) ttft = performance.now() - started;
  }
  return { ttft, total: performance.now() - started };
}

function report(
  results: Record<string, { seq: Summary; seqTtft: Summary; conc: Summary; rps: number }>,
): void {
  const direct = results.direct;
  console.log(
    `\nsequential: ${SEQUENTIAL} requests; concurrent: ${CONCURRENT} requests at concurrency ${CONCURRENCY}\n`,
  );
  console.log(
    'target                | seq first byte p50/p99 | seq total p50/p99    | conc total p50/p99   | req/s  | ratio p50 (seq, conc)',
  );
  for (const [name, r] of Object.entries(results)) {
    const ratio = direct
      ? `${(r.seq.p50 / direct.seq.p50).toFixed(2)}x, ${(r.conc.p50 / direct.conc.p50).toFixed(2)}x`
      : '';
    console.log(
      `${name.padEnd(21)} | ${`${ms(r.seqTtft.p50)} / ${ms(r.seqTtft.p99)}`.padEnd(22)} | ${`${ms(r.seq.p50)} / ${ms(r.seq.p99)}`.padEnd(20)} | ${`${ms(r.conc.p50)} / ${ms(r.conc.p99)}`.padEnd(20)} | ${r.rps.toFixed(0).padStart(6)} | ${ratio}`,
    );
  }
  if (direct) {
    for (const [name, r] of Object.entries(results)) {
      if (name === 'direct') continue;
      console.log(
        `${name}: adds ${ms(r.seq.p50 - direct.seq.p50)} p50, ${ms(r.seq.p99 - direct.seq.p99)} p99 (sequential)`,
      );
    }
  }
}

function startProcess(
  children: ChildProcess[],
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start`)), 15_000);
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = ready.exec(out);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume(); // discard the per-request log lines
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

await main();
