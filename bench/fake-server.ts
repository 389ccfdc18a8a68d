import { createInterface } from 'node:readline';
import { type Behaviour, startFakeUpstream } from '../fake-upstream';

/**
 * The fake upstream as its own process, so the benchmark's client, proxy and upstream do not share an event loop.
 *
 * Options from the environment: `BENCH_TOKENS` (20) words per reply, `BENCH_TOKEN_DELAY_MS` (0) between tokens.
 * A paced mode per request, driven on stdin by the bench (one command a line, answered `ok <command>` on stdout):
 * - `paced <delayMs> <count> <tokens>`: the next <count> chat calls stream <tokens> words, <delayMs> apart;
 * - `instant`: drops whatever paced calls are left, so the next calls get the plain reply again.
 */
const WORDS = 'The quick brown fox jumps over the lazy dog.'.split(' ');

function words(count: number): string {
  return Array.from({ length: count }, (_, i) => WORDS[i % WORDS.length]).join(' ');
}

const tokens = Number(process.env.BENCH_TOKENS ?? 20);
const fake = await startFakeUpstream({
  port: Number(process.env.PORT ?? 0),
  tokenDelayMs: Number(process.env.BENCH_TOKEN_DELAY_MS ?? 0),
  reply: () => words(tokens),
});

function control(line: string): void {
  const [command, ...args] = line.trim().split(/\s+/);
  fake.reset(); // also forgets the calls seen so far, so a long run does not keep them all
  if (command === 'paced') {
    const [delayMs = 20, count = 0, paced = tokens] = args.map(Number);
    const behaviour: Behaviour = { kind: 'paced', tokenDelayMs: delayMs, text: words(paced) };
    fake.script(...Array.from({ length: count }, () => behaviour));
  }
  console.log(`ok ${line.trim()}`);
}

if (!process.stdin.isTTY) createInterface({ input: process.stdin }).on('line', control);
console.log(`fake upstream on ${fake.url}`);
