import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loop, type Target } from './client';
import { redisAnswers, type Server, Servers, control as tellFake } from './processes';
import { proxyEnv, requestBodies } from './targets';

/**
 * `npm run bench:instructions [-- --ref <git ref> | --features] [--paced]`: what one request costs the proxy, in CPU instructions counted by
 * valgrind's callgrind. Times on a shared machine move by ±30% between runs of the same build (see the README), so
 * an A/B of a few percent cannot be read from them; an instruction count is far steadier, though not fixed (how much
 * Redis and socket work batches together depends on timing), so compare two builds counted in the same run. With
 * `--ref`, the bundle of that commit is built beside the working tree's (with this checkout's node_modules) and both
 * are counted at once, one per core. With `--features`, the working tree's bundle is counted with its defaults, with
 * each feature that can be turned off turned off (`FEATURES`), and the runtime's floor beside them.
 * Each proxy runs under callgrind (about 50× slower): a warm-up, then the counters are zeroed, `REQUESTS` requests
 * are made, and the counters are dumped. Needs valgrind (`apt-get install valgrind`) and Redis, as `npm run bench`.
 * With `--paced`, what one token costs instead: `PACED_STREAMS` streams at once, each `PACED_TOKENS` tokens
 * `PACED_MS` apart (one token per read of the upstream, as real models stream), counted from their start to their end
 * and divided by the tokens (their requests' own cost included, a small part of it).
 */
const REQUESTS = Number(process.env.BENCH_CG_REQUESTS ?? 300);
const WARMUP = Number(process.env.BENCH_CG_WARMUP ?? 300);
const CLIENTS = Number(process.env.BENCH_CG_CLIENTS ?? 4);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PACED = process.argv.includes('--paced');
const PACED_STREAMS = Number(process.env.BENCH_CG_PACED_STREAMS ?? 20);
const PACED_TOKENS = Number(process.env.BENCH_CG_PACED_TOKENS ?? 200);
const PACED_MS = 50;

interface Counted {
  readonly label: string;
  /** Per request, or per token with `--paced`. */
  readonly per: number;
}

/** What is counted: a server script, and the settings it runs with on top of the proxy's bench defaults. */
interface Subject {
  readonly label: string;
  readonly script: string;
  readonly env: Record<string, string>;
}

/**
 * `--features`: what each feature that can be turned off costs a request, each setting against the defaults in one
 * run, and the runtime's floor (bench/floor-proxy.ts): the proxy's cost above the floor, feature by feature.
 */
const FEATURES: readonly Omit<Subject, 'script'>[] = [
  { label: 'defaults', env: {} },
  { label: 'COALESCE=off', env: { COALESCE: 'off' } },
  { label: 'SAFETY_IDENTIFIER=off', env: { SAFETY_IDENTIFIER: 'off' } },
  // With no Redis, the limiter and the reply log both keep to this process.
  { label: 'RATE_LIMIT_STORE=memory', env: { RATE_LIMIT_STORE: 'memory' } },
  {
    label: 'all three',
    env: { COALESCE: 'off', SAFETY_IDENTIFIER: 'off', RATE_LIMIT_STORE: 'memory' },
  },
];

/** Counted at once: one per core (callgrind runs a process on one). */
const AT_ONCE = 2;

async function main(): Promise<void> {
  const ref = flag('--ref');
  const features = process.argv.includes('--features');
  prerequisites();
  if (!(await redisAnswers(REDIS_URL)))
    throw new Error(`No Redis answers at ${REDIS_URL}: start redis-server.`);
  if (ref && features) throw new Error('--features counts the working tree only: leave out --ref.');
  const builds = [{ label: 'working tree', dir: process.cwd() }];
  if (ref) builds.unshift({ label: ref, dir: checkout(ref) });
  const bundle = (dir: string) => join(dir, 'dist/server.mjs');
  const subjects: Subject[] = features
    ? [
        ...FEATURES.map((f) => ({ ...f, script: bundle(process.cwd()) })),
        { label: 'floor', script: 'bench/floor-proxy.ts', env: {} },
      ]
    : builds.map((build) => ({ label: build.label, script: bundle(build.dir), env: {} }));
  const counting = PACED
    ? `${PACED_STREAMS} streams of ${PACED_TOKENS} tokens ${PACED_MS} ms apart counted`
    : `${REQUESTS} counted, ${CLIENTS} clients`;
  console.log(
    `Main-thread instructions per ${unit()} of proxy (ui), limiter on Redis unless said: ${WARMUP} warm-up ` +
      `requests, then ${counting}, each ${features ? 'setting' : 'build'} under callgrind (a few minutes)…`,
  );
  const counted: Counted[] = [];
  try {
    for (const build of builds)
      execFileSync('npm', ['run', '--silent', 'build'], { cwd: build.dir, stdio: 'ignore' });
    for (let i = 0; i < subjects.length; i += AT_ONCE)
      counted.push(...(await Promise.all(subjects.slice(i, i + AT_ONCE).map(count))));
  } finally {
    if (builds.length > 1) rmSync(builds[0]?.dir ?? '', { recursive: true, force: true });
  }
  const first = counted[0] as Counted;
  const width = Math.max(...counted.map((c) => c.label.length)) + 2;
  for (const c of counted) {
    const change = c === first ? '' : `  ${percent(c.per / first.per - 1)} vs ${first.label}`;
    const amount = PACED ? `${(c.per / 1e3).toFixed(1)} k` : `${(c.per / 1e6).toFixed(2)} M`;
    console.log(`${c.label.padEnd(width)} ${amount} main-thread instructions per ${unit()}${change}`);
  }
}

function unit(): string {
  return PACED ? 'token' : 'request';
}

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

function prerequisites(): void {
  for (const tool of ['valgrind', 'callgrind_control']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not installed: apt-get install valgrind`);
    }
  }
}

/** The commit's sources in a temporary directory, sharing this checkout's node_modules. */
function checkout(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'acp-ref-'));
  const archive = execFileSync('git', ['archive', ref], { maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(resolve('node_modules'), join(dir, 'node_modules'));
  return dir;
}

async function count({ label, script, env }: Subject): Promise<Counted> {
  const out = mkdtempSync(join(tmpdir(), 'acp-cg-'));
  const callgrind = [
    'valgrind',
    '--tool=callgrind',
    '--smc-check=all-non-file', // V8 writes the code it runs
    '--separate-threads=yes', // the main thread apart from V8's compiler and GC threads (see `dumped`)
    `--callgrind-out-file=${join(out, 'cg.out')}`,
  ];
  const servers = new Servers(process.execPath);
  const underCallgrind = new Servers(process.execPath, callgrind, 300_000);
  try {
    const fake = await servers.start('fake upstream', 'bench/fake-server.ts', {}, /fake upstream on (\S+)/);
    const proxy = await underCallgrind.start(
      label,
      script,
      // Each under a prefix of its own: two builds on one Redis must not share replies.
      {
        ...proxyEnv(fake.url, 'redis', REDIS_URL),
        RATE_LIMIT_PREFIX: `bench-cg-${process.pid}-${label.replace(/\W/g, '')}`,
        ...env,
      },
      /listening on (\S+)/,
    );
    const target = uiTarget(proxy);
    await loop(target, WARMUP, CLIENTS, 120_000);
    const [requests, clients] = PACED ? [PACED_STREAMS, PACED_STREAMS] : [REQUESTS, CLIENTS];
    if (PACED) await tellFake(fake, `paced ${PACED_MS} ${PACED_STREAMS} ${PACED_TOKENS}`);
    control(proxy, '-z');
    const batch = await loop(target, requests, clients, 120_000);
    control(proxy, '-d');
    const failed = batch.outcomes.filter((o) => !o.ok).length;
    if (failed) throw new Error(`${label}: ${failed} of ${requests} requests failed`);
    return { label, per: dumped(out) / (PACED ? requests * PACED_TOKENS : requests) };
  } finally {
    underCallgrind.stopAll();
    servers.stopAll();
    rmSync(out, { recursive: true, force: true });
  }
}

function uiTarget(proxy: Server): Target {
  const url = new URL('/api/chat', proxy.url).href;
  return {
    name: proxy.name,
    url,
    wire: 'ui',
    headers: { 'content-type': 'application/json' },
    body: requestBodies().ui,
  };
}

/** `callgrind_control -z` zeroes the counters, `-d` dumps them: the process is the launcher's (valgrind's) pid. */
function control(proxy: Server, option: '-z' | '-d'): void {
  execFileSync('callgrind_control', [option, String(proxy.child.pid)], { stdio: 'ignore' });
}

/**
 * The main thread's instructions in the dump taken after the counted requests (`cg.out.1-01`: the first dump, thread
 * 1). V8's compiler threads are left out: right after a warm-up that callgrind makes short, they still spend as much
 * again optimizing code, and how much varies from run to run; that is start-up cost, not what a request costs.
 */
function dumped(dir: string): number {
  const file = readdirSync(dir).find((name) => name.endsWith('.1-01'));
  if (!file) throw new Error(`no callgrind dump of the main thread in ${dir}`);
  const summary = /^summary: (\d+)$/m.exec(readFileSync(join(dir, file), 'utf8'));
  if (!summary?.[1]) throw new Error(`no summary line in ${file}`);
  return Number(summary[1]);
}

function percent(fraction: number): string {
  return `${fraction >= 0 ? '+' : ''}${(fraction * 100).toFixed(1)}%`;
}

await main();
