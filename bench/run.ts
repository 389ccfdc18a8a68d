import { writeFileSync } from 'node:fs';
import { chartSvg } from './chart';
import { printChecks } from './checks';
import { nodeVersion, redisAnswers, Servers, serverNode } from './processes';
import { printMarkdown, printTables, type Results, type Row } from './report';
import { manyClients, oneClient, openStreams, SETTINGS, warmUp } from './scenarios';
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
    'ai-sdk route (peer)',
  ],
  b: [
    'direct',
    'floor (node:http)',
    'proxy (ui)',
    'proxy (text)',
    'proxy (ui, log off)',
    'proxy (ui, cache hit)',
    'ai-sdk route (peer)',
  ],
  c: ['direct', 'floor (node:http)', 'proxy (ui)', 'proxy (text)', 'ai-sdk route (peer)'],
} as const;
const CHART = process.env.BENCH_CHART ?? 'docs/bench.svg';

async function main(): Promise<void> {
  const started = performance.now();
  const node = serverNode();
  const store = await prerequisites(node);
  const servers = new Servers(node);
  try {
    const fleet = await startFleet(servers, store, redisUrl());
    const rows = await runScenarios(fleet);
    const results: Results = {
      node: nodeVersion(node),
      clientNode: process.version,
      store,
      settings: SETTINGS,
      rows,
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
  if (process.env.BENCH_PORTKEY) {
    console.log(
      '!! BENCH_PORTKEY: the Portkey peer gateway is not installed in this project yet: NOT measured.',
    );
  }
  return redis ? 'redis' : 'memory';
}

async function runScenarios(fleet: Fleet): Promise<Row[]> {
  const rows = new Map<string, Row>([...fleet.targets.keys()].map((name) => [name, { name }]));
  const target = (name: string) => {
    const found = fleet.targets.get(name);
    if (!found) throw new Error(`no target ${name}`);
    return found;
  };
  /** Runs one scenario over its targets, one after the other, and says how long it took. */
  const phase = async (title: string, names: readonly string[], run: (name: string) => Promise<Row>) => {
    process.stdout.write(title);
    const started = performance.now();
    for (const name of names) rows.set(name, await run(name));
    console.log(` ${((performance.now() - started) / 1000).toFixed(0)} s`);
  };
  const s = SETTINGS;
  await phase('warm-up, 100 requests per target…', [...fleet.targets.keys()], async (name) => {
    await warmUp(target(name));
    return { name };
  });
  // (c) first, right after the warm-up: each process's idle RSS is then that of a warm, not a loaded, server.
  const streams = `(c) ${s.streams} streams at once, ${s.pacedTokens} tokens ${s.tokenDelayMs} ms apart…`;
  await phase(streams, SCENARIOS.c, async (name) => {
    const t = target(name);
    return { ...rows.get(name), name, c: await openStreams(t, t.server, fleet.fake) };
  });
  await phase(`(a) 1 client, ${s.sequential} requests each, instant tokens…`, SCENARIOS.a, async (name) => ({
    ...rows.get(name),
    name,
    a: await oneClient(target(name)),
  }));
  await phase(
    `(b) ${s.clients} clients, ${s.concurrent} requests each, instant tokens…`,
    SCENARIOS.b,
    async (name) => ({
      ...rows.get(name),
      name,
      b: await manyClients(target(name)),
    }),
  );
  return [...rows.values()];
}

await main();
