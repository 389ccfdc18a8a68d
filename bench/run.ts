import { writeFileSync } from 'node:fs';
import { chartSvg } from './chart';
import { printChecks } from './checks';
import type { CpuMeter } from './cpu';
import { nodeVersion, redisAnswers, Servers, serverNode } from './processes';
import { printMarkdown, printTables, type Results, type Row } from './report';
import { redisRoundTrip } from './round-trip';
import { bothOrders, manyClients, oneClient, openStreams, prime, SETTINGS, warmUp } from './scenarios';
import { type Fleet, LIFTED_LIMITS, type Store, startFleet } from './targets';

/**
 * `npm run bench`: issue 15's scenarios, side by side in one run, straight to the fake upstream (the limit),
 * through the proxy and through a peer. Each server runs in its own process; this process is only the client.
 * Prints aligned tables, the issue's targets met or not, a README-ready markdown table, and writes docs/bench.svg.
 */
const SCENARIOS = {
  a: [
    'direct',
    'floor (node:http)',
    'proxy (ui)',
    'proxy (text)',
    'proxy (ui, log off)',
    'portkey (peer gateway)',
    'ai-sdk route (peer)',
  ],
  b: [
    'direct',
    'floor (node:http)',
    'proxy (ui)',
    'proxy (text)',
    'proxy (ui, log off)',
    'proxy (ui, cache hit)',
    'portkey (peer gateway)',
    'ai-sdk route (peer)',
  ],
  c: [
    'direct',
    'floor (node:http)',
    'proxy (ui)',
    'proxy (text)',
    'portkey (peer gateway)',
    'ai-sdk route (peer)',
  ],
} as const;
const CHART = process.env.BENCH_CHART ?? 'docs/bench.svg';

async function main(): Promise<void> {
  const started = performance.now();
  const node = serverNode();
  const store = await prerequisites(node);
  const servers = new Servers(node);
  try {
    const fleet = await startFleet(servers, store, redisUrl());
    const rows = await runScenarios(fleet, store);
    // After the scenarios, with every server at rest (at 1 client, all but the one measured are).
    const roundTrip = store === 'redis' ? await redisRoundTrip(redisUrl()) : undefined;
    const results: Results = {
      node: nodeVersion(node),
      clientNode: process.version,
      store,
      settings: SETTINGS,
      rows,
      ...(roundTrip && { redisRoundTrip: roundTrip }),
      seconds: (performance.now() - started) / 1000,
    };
    printTables(results);
    printChecks(results);
    printMarkdown(results);
    writeFileSync(CHART, chartSvg(results));
    console.log(`\nChart written to ${CHART}. The whole run took ${results.seconds.toFixed(0)} s.`);
  } finally {
    servers.stopAll();
  }
}

function redisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/** What the numbers depend on, said before any is measured. */
async function prerequisites(node: string): Promise<Store> {
  console.log(`Servers run on Node ${nodeVersion(node)} (${node}); the client on Node ${process.version}.`);
  const redis = await redisAnswers(redisUrl());
  if (redis) {
    console.log(`Limiter store: Redis at ${redisUrl()} (answers PING).`);
  } else {
    const bar = '!'.repeat(100);
    console.log(`${bar}\n!! NO REDIS at ${redisUrl()}: the proxy runs with RATE_LIMIT_STORE=memory.`);
    console.log(
      `!! The limiter's Redis round trips are NOT in these numbers. Start redis-server to include them.\n${bar}`,
    );
  }
  const lifted = Object.entries(LIFTED_LIMITS)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
  console.log(
    `All clients come from one address (127.0.0.1), so the bench lifts the per-caller limits: ${lifted}.`,
  );
  return redis ? 'redis' : 'memory';
}

async function runScenarios(fleet: Fleet, store: Store): Promise<Row[]> {
  const rows = new Map<string, Row>([...fleet.targets.keys()].map((name) => [name, { name }]));
  const target = (name: string) => {
    const found = fleet.targets.get(name);
    if (!found) throw new Error(`no target ${name}`);
    return found;
  };
  const s = SETTINGS;
  /** Runs one scenario, and says how long it took. */
  const phase = async (title: string, run: () => Promise<void>) => {
    process.stdout.write(title);
    const started = performance.now();
    await run();
    console.log(` ${((performance.now() - started) / 1000).toFixed(0)} s`);
  };
  /** Whose CPU a target's batch is metered on: its server's, and Redis's for the proxy's rows when it is on Redis. */
  const meter = (name: string): CpuMeter => {
    const onRedis = store === 'redis' && name.startsWith('proxy');
    return { server: target(name).server.child.pid, ...(onRedis && { redisUrl: redisUrl() }) };
  };
  const set = (name: string, part: Partial<Row>) => rows.set(name, { ...rows.get(name), ...part, name });
  await phase(`warm-up, ${s.warmUp} requests per target (at most ${s.warmUpSeconds} s each)…`, async () => {
    for (const name of fleet.targets.keys()) await warmUp(target(name));
  });
  // (a) and (b) first, right after the warm-up, so every target has the same history when they are measured: a
  // process that has run the 1,000 streams has a grown young generation (fewer scavenges), which made the reply log
  // look free next to a target that had not. (c) last: its "idle" is then a warm server at rest after traffic.
  await phase(`(a) 1 client, ${s.sequential} requests each, instant tokens, in both orders…`, async () => {
    const measured = await bothOrders(
      SCENARIOS.a,
      (name, share) => oneClient(target(name), share),
      (name) => prime(target(name), 'a'),
    );
    for (const [name, a] of measured) set(name, { a });
  });
  await phase(
    `(b) ${s.clients} clients, ${s.concurrent} requests each, instant tokens, in both orders…`,
    async () => {
      const measured = await bothOrders(
        SCENARIOS.b,
        (name, share) => manyClients(target(name), meter(name), share),
        (name) => prime(target(name), 'b'),
      );
      for (const [name, b] of measured) set(name, { b });
    },
  );
  await phase(
    `(c) ${s.streams} streams at once, ${s.pacedTokens} tokens ${s.tokenDelayMs} ms apart…`,
    async () => {
      for (const name of SCENARIOS.c)
        set(name, { c: await openStreams(target(name), target(name).server, fleet.fake) });
    },
  );
  return [...rows.values()];
}

await main();
