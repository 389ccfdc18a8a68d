import { execFileSync } from 'node:child_process';
import type { Target } from './client';
import type { Server, Servers } from './processes';

/**
 * What the bench compares, each its own process: the fake upstream (direct: the limit), the proxy as `npm start`
 * runs it (with its defaults, and with each feature that can be turned off turned off), and the peers.
 */
const KEY = 'bench-key';

export type Store = 'redis' | 'memory';

export interface Fleet {
  readonly fake: Server;
  readonly proxy: Server;
  /** The same defaults in a process of its own, so each target's RSS is measured from its own idle. */
  readonly proxyText: Server;
  readonly proxyLogOff: Server;
  readonly proxyCache: Server;
  readonly peer: Server;
  /** The peer gateway, Portkey (bench/peer-portkey.ts). */
  readonly portkey: Server;
  /** The runtime's floor (bench/floor-proxy.ts): the protocol work alone, on plain `node:http` and undici. */
  readonly floor: Server;
  /** Every target by name, in the order the tables show them. */
  readonly targets: ReadonlyMap<string, Target & { readonly server: Server }>;
}

/** Every bench client comes from one address: these lift the per-caller limits it would otherwise hit. */
export const LIFTED_LIMITS = {
  RATE_LIMIT_REQUESTS: '1000000000',
  TOKEN_BUDGET: '1000000000000',
  MAX_STREAMS_PER_CALLER: '1000000000',
} as const;

export async function startFleet(servers: Servers, store: Store, redisUrl: string): Promise<Fleet> {
  // The proxy as production runs it (`npm start`): the built bundle on plain Node, not the sources under tsx.
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  const fake = await servers.start('fake upstream', 'bench/fake-server.ts', {}, /fake upstream on (\S+)/);
  const proxy = (name: string, env: Record<string, string>) =>
    servers.start(
      name,
      'dist/server.mjs',
      { ...proxyEnv(fake.url, store, redisUrl), ...env },
      /listening on (\S+)/,
    );
  // Started one after the other: on 2 cores, parallel tsx start-ups only slow each other down.
  const defaults = await proxy('proxy', {});
  const text = await proxy('proxy (text)', {});
  const logOff = await proxy('proxy (log off)', { COALESCE: 'off' });
  const cache = await proxy('proxy (cache)', { CACHE_TTL: '1 h', CACHE_SCOPE: 'global' });
  // The peer and the floor: each a plain script given the fake upstream, which says its URL when it listens.
  const beside = (name: string, script: string) =>
    servers.start(name, script, { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: fake.url }, /listening on (\S+)/);
  const peer = await beside('ai-sdk route', 'bench/peer-ai-sdk.ts');
  const floor = await beside('floor', 'bench/floor-proxy.ts');
  const portkey = await beside('portkey', 'bench/peer-portkey.ts');
  const started = {
    fake,
    proxy: defaults,
    proxyText: text,
    proxyLogOff: logOff,
    proxyCache: cache,
    peer,
    floor,
    portkey,
  };
  return { ...started, targets: buildTargets(started) };
}

/** The proxy as `npm start` runs it against the fake upstream: the real request path, limiter included. */
export function proxyEnv(
  upstream: string,
  store: Store,
  redisUrl: string,
): Record<string, string | undefined> {
  return {
    OPENAI_API_KEY: KEY,
    OPENAI_BASE_URL: upstream,
    PORT: '0',
    CHAT_MODEL: 'bench-model',
    // On the local Redis, or in memory when there is none.
    RATE_LIMIT_STORE: store,
    REDIS_URL: store === 'redis' ? redisUrl : undefined,
    UPSTASH_REDIS_REST_URL: undefined,
    UPSTASH_REDIS_REST_TOKEN: undefined,
    KV_REST_API_URL: undefined,
    KV_REST_API_TOKEN: undefined,
    RATE_LIMIT_PREFIX: `bench-${process.pid}`,
    ...LIFTED_LIMITS,
  };
}

/**
 * What each kind of client sends. Every request asks something else (as different users do), so none is coalesced
 * with another or cached, except `same`, which the cache target sends every time.
 */
export function requestBodies() {
  let asked = 0;
  const prompt = () => `Tell me about foxes (${asked++}).`;
  // What useChat sends: the UI targets (ours and the peer's) get exactly this.
  const ui = (text = prompt()) =>
    JSON.stringify({
      id: 'bench',
      messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text }] }],
      trigger: 'submit-message',
    });
  return {
    ui: () => ui(),
    same: () => ui('Tell me about foxes.'),
    text: () => JSON.stringify({ messages: [{ role: 'user', content: prompt() }] }),
    // What an OpenAI client sends: direct to the upstream, and to the peer gateway.
    openai: () =>
      JSON.stringify({
        messages: [{ role: 'user', content: prompt() }],
        model: 'bench-model',
        stream: true,
        stream_options: { include_usage: true },
      }),
  };
}

function buildTargets(fleet: Omit<Fleet, 'targets'>) {
  const { fake, proxy, proxyText, proxyLogOff: logOff, proxyCache: cache, peer, floor, portkey } = fleet;
  const body = requestBodies();
  const json = { 'content-type': 'application/json' };
  const chat = (server: Server) => new URL('/api/chat', server.url).href;
  const list = [
    {
      name: 'direct',
      server: fake,
      url: `${fake.url}/chat/completions`,
      wire: 'openai-sse',
      headers: { ...json, authorization: `Bearer ${KEY}` },
      body: body.openai,
    },
    { name: 'floor (node:http)', server: floor, url: floor.url, wire: 'ui', headers: json, body: body.ui },
    { name: 'proxy (ui)', server: proxy, url: chat(proxy), wire: 'ui', headers: json, body: body.ui },
    {
      name: 'proxy (text)',
      server: proxyText,
      url: chat(proxyText),
      wire: 'text',
      headers: { ...json, accept: 'text/plain' },
      body: body.text,
    },
    {
      name: 'proxy (ui, log off)',
      server: logOff,
      url: chat(logOff),
      wire: 'ui',
      headers: json,
      body: body.ui,
    },
    {
      name: 'proxy (ui, cache hit)',
      server: cache,
      url: chat(cache),
      wire: 'ui',
      headers: json,
      body: body.same,
    },
    {
      name: 'portkey (peer gateway)',
      server: portkey,
      url: `${portkey.url}/v1/chat/completions`,
      wire: 'openai-sse',
      // Portkey's way to an OpenAI-compatible API of one's own: the provider, and the fake upstream as custom host.
      headers: {
        ...json,
        authorization: `Bearer ${KEY}`,
        'x-portkey-provider': 'openai',
        'x-portkey-custom-host': fake.url,
      },
      body: body.openai,
    },
    { name: 'ai-sdk route (peer)', server: peer, url: peer.url, wire: 'ui', headers: json, body: body.ui },
  ] as const satisfies readonly (Target & { server: Server })[];
  return new Map(list.map((target) => [target.name, target]));
}
