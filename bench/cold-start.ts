import { EdgeRuntime } from 'edge-runtime';
import { startFakeUpstream } from '../fake-upstream';
import { buildEdgeBundle } from '../tests/support/edge-bundle';
import { ms, summarize } from './stats';

/**
 * The edge function's cold start, as issue 15 counts it: a fresh `edge-runtime` isolate loads the bundle and answers
 * its first request (against the fake upstream). The first rounds also warm this process up (its JIT, the runtime's
 * own setup), so they are run and left out; what is reported is the isolate's own cost.
 */
const ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 30);
const WARMUP = 3;

const bundle = await buildEdgeBundle();
const fake = await startFakeUpstream({ apiKey: 'bench-key' });
const env = { OPENAI_API_KEY: 'bench-key', OPENAI_BASE_URL: fake.url, CHAT_MODEL: 'bench-model' };
const quiet = { log() {}, error() {}, info() {}, warn() {} };
const evaluate: number[] = [];
const firstAnswer: number[] = [];
try {
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const runtime = new EdgeRuntime({
      extend: (context) => Object.assign(context, { process: { env }, console: quiet }),
    });
    const started = performance.now();
    runtime.evaluate(bundle.code);
    const loaded = performance.now();
    const res = await runtime.dispatchFetch('https://proxy.test/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': '203.0.113.9' },
      body: JSON.stringify({ messages: [{ role: 'user', content: `Hi (${round})` }] }),
    });
    if (res.status !== 200) throw new Error(`cold start round ${round}: status ${res.status}`);
    await res.text();
    if (round < WARMUP) continue;
    evaluate.push(loaded - started);
    firstAnswer.push(performance.now() - started);
  }
} finally {
  await fake.close();
}
const load = summarize(evaluate);
const total = summarize(firstAnswer);
console.log(
  `edge bundle: ${(bundle.gzipBytes / 1024).toFixed(1)} KB gzipped (${(bundle.bytes / 1024).toFixed(0)} KB)`,
);
console.log(
  `cold start over ${ROUNDS} fresh isolates: load ${ms(load.p50)} p50 / ${ms(load.p99)} p99; load + first answer ${ms(total.p50)} p50 / ${ms(total.p99)} p99`,
);
