import { type ChildProcess, spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Behaviour, demoReply, faults, splitTokens } from '../fake-upstream/behaviours';
import type { ChatHandler } from '../lib/chat-handler';
import { defaultInternal, type Internal } from '../lib/internal';
import type { RequestLog } from '../lib/log';
import type { TcpRedis } from '../lib/redis/connect';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import { EventList } from '../lib/replies/event-list';
import { isLeaderLost, type ReplyEvent } from '../lib/replies/events';
import { type MirrorOptions, mirrorTo } from '../lib/replies/mirror';
import { createRedisLog } from '../lib/replies/redis-log';
import { createReplies, type ServeOptions } from '../lib/replies/replies';
import { webSha256 } from '../lib/replies/reply-key';
import { READ_BATCH, type SharedLog } from '../lib/replies/shared-log';
import { tailSharedReply } from '../lib/replies/tail';
import { createShutdown } from '../lib/shutdown';
import type { ChatRequest } from '../lib/types';
import { nodePlatform } from '../server/node-platform';
import { tcpRedis } from '../server/redis-tcp';
import { ReplyResponse } from '../server/reply-pipe';
import {
  type BuildOptions,
  buildHandler,
  chatRequest,
  eventually,
  startHarness,
  TEST_ENV,
  TEST_IP,
  testConfig,
} from './support/harness';
import { monitorRedis } from './support/monitor';
import { REDIS_TEST_URL, redisStoreEnv, uniquePrefix } from './support/redis';
import { upstashBridgeForFile } from './support/redis-for-file';
import { recordOutput } from './support/secret-scan';

/**
 * Issue 12, "one reply, many readers", end to end: real handlers (lib/create-proxy.ts, as production wires them), a
 * real redis-server (TCP, and Upstash REST through the bridge), the fake upstream on loopback, and for the dead
 * leader a real server process that is SIGKILLed.
 *
 * Nothing here sleeps to let a race settle: a reply that must still be running while others join it waits on a
 * gate the test opens (`pause`/`held` in fake-upstream/behaviours.ts), and "has joined" is read off the request
 * itself (`joined`). The only sleeps give something a chance to go wrong (an upstream that must not be stopped gets a
 * few lease renewals to be stopped anyway). No latency has an upper bound. Every prompt carries this run's id: the
 * reply log's keys are hashes of what is asked, under one prefix for every run and file, and a cached reply lives on
 * in Redis after the run.
 */
const h = await startHarness();
const bridge = await upstashBridgeForFile();

const RUN = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
let serial = 0;
/** A prompt no other test, file or run asks: nothing can coalesce with it or hit it by accident. */
const prompt = (what: string) => `${what} #${RUN}-${++serial}`;
const OTHER_IP = '198.51.100.99';

// Gates the fake waits on; any a failed test left shut are opened after it, so no upstream call hangs on.
const gates: (() => void)[] = [];
function gate(): { until: Promise<void>; open: () => void } {
  let open = () => {};
  const until = new Promise<void>((resolve) => {
    open = resolve;
  });
  gates.push(open);
  return { until, open };
}
afterEach(() => {
  for (const open of gates.splice(0)) open();
});

/** A reply that sends two tokens and then waits for the gate: whoever joins before it opens joins mid-stream. */
const paused = (until: Promise<void>): Behaviour => ({ kind: 'pause', afterTokens: 2, until });
const firstTwo = (text: string) => splitTokens(text).slice(0, 2).join('');

type Backend = 'tcp' | 'rest';

/** As in tests/rate-limit.test.ts: the limiter's store, and so the shared reply log, on the real Redis. */
const onRedis = (backend: Backend) => redisStoreEnv(backend, 'replies', bridge);

interface Instance {
  readonly handler: ChatHandler;
  readonly logs: RequestLog[];
}

/** One proxy instance: its own handler, limiter, in-memory reply log and log lines. */
function instance(
  env: Record<string, string> = {},
  internal?: Partial<Internal>,
  options: BuildOptions = {},
): Instance {
  const logs: RequestLog[] = [];
  const config = testConfig({ OPENAI_BASE_URL: h.fake.url, ...env });
  return {
    handler: buildHandler(config, { ...options, logs, ...(internal && { _internal: internal }) }),
    logs,
  };
}

/**
 * Redis over TCP (over `base`) whose scripts that contain `marker`, on the limiter's client (`redis`) or the reply
 * log's (`raw`), wait for `until` before they are sent; `asked` hears each call.
 */
function holdingScripts(
  client: 'redis' | 'raw',
  marker: string,
  until: Promise<void>,
  asked: () => void = () => {},
  base: TcpRedis = tcpRedis,
): TcpRedis {
  return (url, timeoutMs) => {
    const connection = base(url, timeoutMs);
    const createScript = connection[client].createScript.bind(connection[client]);
    const held = (source: string) => {
      const script = createScript(source);
      if (!source.includes(marker)) return script;
      const exec = async (keys: string[], args: string[]) => {
        asked();
        await until;
        return script.exec(keys, args);
      };
      return Object.assign(Object.create(script), { exec });
    };
    return {
      ...connection,
      [client]: Object.assign(Object.create(connection[client]), { createScript: held }),
    };
  };
}

/** A reply's end (the reply log's FINISH) held on its way to Redis. */
const holdingFinish = (until: Promise<void>) => holdingScripts('raw', "'done', '1'", until);
/** An admission held: the limiter's booking (the budget and stream-slot script). */
const holdingBookings = (until: Promise<void>, asked: () => void) =>
  holdingScripts('redis', 'ZCARD', until, asked);
/** The reply log's claims held. */
const holdingClaims = (until: Promise<void>, asked: () => void, base?: TcpRedis) =>
  holdingScripts('raw', "role = 'hit'", until, asked, base);

/** Two instances of one deployment: same settings, one Redis, nothing else shared. */
function pair(env: Record<string, string>): [Instance, Instance] {
  return [instance(env), instance(env)];
}

interface Ask {
  readonly ip?: string;
  readonly chatId?: string;
  readonly headers?: Record<string, string>;
  /** Merged into the body: model, temperature, maxTokens... */
  readonly body?: object;
  /** The conversation before the question. */
  readonly earlier?: readonly { readonly role: 'user' | 'assistant'; readonly text: string }[];
}

/** The body useChat sends for a new question: its chat id as `id`, the message with its id and parts. */
function ask(text: string, options: Ask = {}): Request {
  const body = {
    id: options.chatId ?? `chat-${RUN}-${serial}`,
    messages: [...(options.earlier ?? []), { role: 'user', text }].map((m, i) => ({
      id: `m${i}`,
      role: m.role,
      parts: [{ type: 'text', text: m.text }],
    })),
    trigger: 'submit-message',
    ...options.body,
  };
  return chatRequest(body, { headers: { 'x-real-ip': options.ip ?? TEST_IP, ...options.headers } });
}

/** useChat's resume transport (`GET`), or the page's stop (`DELETE`). */
function control(chatId: string, method: 'GET' | 'DELETE', ip = TEST_IP): Request {
  return new Request(`http://proxy.test/api/chat/${chatId}/stream`, { method, headers: { 'x-real-ip': ip } });
}

/**
 * True once the request has joined a reply, as its leader, a follower or a hit: the reply log listens on the
 * request's signal for its client leaving (`join` in lib/replies/joining.ts), and nothing before it does. It stops
 * listening when the request leaves again.
 */
const joined = (req: Request) => getEventListeners(req.signal, 'abort').length > 0;

interface Chunk {
  readonly type: string;
  readonly delta?: string;
  readonly messageId?: string;
  readonly errorText?: string;
}

/** A UI message stream read as it arrives, like useChat does; `ended` once it is over (or cancelled). */
class UiStream {
  readonly chunks: Chunk[] = [];
  readonly ended: Promise<void>;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(readonly res: Response) {
    if (res.status !== 200 || !res.body) throw new Error(`expected a stream, got ${res.status}`);
    this.reader = res.body.getReader();
    this.ended = this.read();
  }

  private async read(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          if (event.startsWith('data: ') && event !== 'data: [DONE]')
            this.chunks.push(JSON.parse(event.slice(6)) as Chunk);
        }
      }
    } catch {
      // Cancelled by the test.
    }
  }

  get deltas(): string[] {
    return this.chunks.filter((c) => c.type === 'text-delta').map((c) => c.delta ?? '');
  }

  get text(): string {
    return this.deltas.join('');
  }

  get messageId(): string | undefined {
    return this.chunks.find((c) => c.type === 'start')?.messageId;
  }

  get errors(): string[] {
    return this.chunks.filter((c) => c.type === 'error').map((c) => c.errorText ?? '');
  }

  get finished(): boolean {
    return this.chunks.some((c) => c.type === 'finish');
  }

  header(name: string): string | null {
    return this.res.headers.get(name);
  }

  /** The client goes away. */
  async cancel(): Promise<void> {
    await this.reader.cancel();
    await this.ended;
  }
}

async function read(res: Response): Promise<UiStream> {
  const stream = new UiStream(res);
  await stream.ended;
  return stream;
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** The token budget left, as the `ratelimit` header tells it. */
function tokensLeft(res: Response): number {
  return Number(/"tokens";r=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1]);
}

const count = <T>(items: readonly T[], value: T) => items.filter((item) => item === value).length;

/** One upstream call answered every stream with the whole reply: one leader, the rest its followers. */
async function expectOneReplyForAll(streams: readonly UiStream[], p: string): Promise<void> {
  await Promise.all(streams.map((s) => s.ended));
  expect(h.fake.calls).toHaveLength(1);
  for (const stream of streams) {
    expect(stream.errors).toEqual([]);
    expect(stream.text).toBe(demoReply(p));
  }
  const roles = streams.map((s) => s.header('x-coalesced'));
  expect(count(roles, 'leader')).toBe(1);
  expect(count(roles, 'follower')).toBe(streams.length - 1);
}

describe('coalescing: identical requests in flight share one upstream call', () => {
  it('50 concurrent identical requests to one instance: 1 upstream call, 50 identical full replies', async () => {
    const { handler, logs } = instance();
    const go = gate();
    h.fake.script(paused(go.until));
    const p = prompt('fifty readers');
    const responses = await Promise.all(Array.from({ length: 50 }, () => handler(ask(p))));
    // Every response is already streaming (its first token is in), and the reply is held mid-stream meanwhile.
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const streams = responses.map((res) => new UiStream(res));
    go.open();
    await expectOneReplyForAll(streams, p);
    expect(streams.every((s) => s.header('x-cache') === 'BYPASS')).toBe(true); // the cache is off
    await eventually(() => logs.length === 50, 10_000);
    expect(
      count(
        logs.map((l) => l.coalesced),
        'follower',
      ),
    ).toBe(49);
    expect(logs.every((l) => l.status === 200 && l.outcome === 'complete')).toBe(true);
  });

  it.each<Backend>(['tcp', 'rest'])(
    '50 identical requests over 2 instances sharing Redis (%s): 1 upstream call, every follower the full text',
    async (backend) => {
      const [a, b] = pair(onRedis(backend));
      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`fifty readers on two instances (${backend})`);
      const handlers = [a.handler, b.handler];
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (handlers[i % 2] as ChatHandler)(ask(p))),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
      const streams = responses.map((res) => new UiStream(res));
      go.open();
      await expectOneReplyForAll(streams, p);
      // Whichever instance led, the other one's 25 all followed it through Redis.
      const onB = streams.filter((_, i) => i % 2 === 1);
      const onA = streams.filter((_, i) => i % 2 === 0);
      const remote = onA.some((s) => s.header('x-coalesced') === 'leader') ? onB : onA;
      expect(remote.map((s) => s.header('x-coalesced'))).toEqual(Array(25).fill('follower'));
    },
  );

  it('each follower is admitted by the rate limit like any request', async () => {
    const { handler } = instance({ RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_WINDOW: '60 s' });
    const go = gate();
    h.fake.script(paused(go.until));
    const p = prompt('limited followers');
    const responses = await Promise.all(Array.from({ length: 5 }, () => handler(ask(p))));
    go.open();
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const served = await Promise.all(responses.filter((r) => r.status === 200).map(read));
    for (const stream of served) expect(stream.text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(1);
    for (const refused of responses.filter((r) => r.status === 429))
      expect(await errorCode(refused)).toBe('rate_limited');
  });

  it('COALESCE=off: identical requests each call the upstream, and carry no x-coalesced', async () => {
    const { handler } = instance({ COALESCE: 'off' });
    const p = prompt('every one its own');
    const streams = await Promise.all([1, 2, 3].map(async () => read(await handler(ask(p)))));
    expect(h.fake.calls).toHaveLength(3);
    for (const stream of streams) {
      expect(stream.text).toBe(demoReply(p));
      expect(stream.header('x-coalesced')).toBeNull();
    }
  });
});

describe('a follower tail nobody reads any more', () => {
  it('is not joined by a request that comes while it winds down: that one follows afresh (tcp)', async () => {
    const env = { ...onRedis('tcp'), REPLY_LEASE_MS: '60000' };
    const a = instance(env);
    const leaving = gate(); // B's LEAVE held: its tail, stopped, is still known there meanwhile
    const b = instance(env, undefined, { tcpRedis: holdingScripts('raw', "'readers', -1", leaving.until) });
    const go = gate();
    h.fake.script(paused(go.until));
    const p = prompt('wound down');
    const leader = new UiStream(await a.handler(ask(p)));
    await eventually(() => leader.deltas.length === 2);
    const first = new UiStream(await b.handler(ask(p)));
    expect(first.header('x-coalesced')).toBe('follower');
    await eventually(() => first.deltas.length === 2, 10_000);
    await first.cancel(); // B's only reader of that tail leaves: the tail stops
    const again = b.handler(ask(p));
    go.open();
    const second = await read(await again);
    expect(second.header('x-coalesced')).toBe('follower');
    expect(second.text).toBe(demoReply(p));
    await leader.ended;
    expect(h.fake.calls).toHaveLength(1);
    leaving.open();
  });
});

describe('disconnects and errors', () => {
  it.each<'memory' | Backend>(['memory', 'tcp', 'rest'])(
    'the leader’s client leaves mid-stream: the followers still get the whole reply, the upstream runs on (%s)',
    async (backend) => {
      const budget = { TOKEN_BUDGET: '10000000' };
      const env = backend === 'memory' ? budget : { ...budget, ...onRedis(backend), REPLY_LEASE_MS: '600' };
      const [a, b] = pair(env);
      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`leader leaves (${backend})`);
      const leader = new UiStream(await a.handler(ask(p)));
      expect(leader.header('x-coalesced')).toBe('leader');
      // Followers on the leader's own instance, or (with Redis) all on the other one: only Redis counts them.
      const others = backend === 'memory' ? [a, a, a] : [b, b, b];
      const followers = await Promise.all(others.map(async (i) => new UiStream(await i.handler(ask(p)))));
      expect(followers.map((f) => f.header('x-coalesced'))).toEqual(['follower', 'follower', 'follower']);
      await eventually(() => leader.deltas.length === 2);
      await leader.cancel();
      // With Redis the leader learns how many read elsewhere when it next renews its lease (every 200 ms here):
      // give it a few renewals to (wrongly) stop. In memory it would have stopped at once.
      await sleep(backend === 'memory' ? 50 : 700);
      const call = h.fake.calls[0];
      expect(call?.aborted).toBe(false);
      go.open();
      await Promise.all(followers.map((f) => f.ended));
      for (const follower of followers) {
        expect(follower.errors).toEqual([]);
        expect(follower.text).toBe(demoReply(p));
      }
      expect(leader.text).toBe(firstTwo(demoReply(p)));
      await eventually(() => call?.endedAt !== undefined, 10_000);
      expect(call?.aborted).toBe(false);
      expect(call?.tokensSent).toBe(splitTokens(demoReply(p)).length);
      expect(h.fake.calls).toHaveLength(1);
      // The leader is logged as cancelled, and charged for the whole reply (it was produced for everyone); the
      // followers are charged nothing. Every request reserves the same worst case, so what the next one sees left
      // is the leader's first view less exactly one reply's usage (the fake's: prompt chars / 4 + tokens sent).
      await eventually(() => a.logs.length + b.logs.length === 4, 10_000);
      expect(a.logs.find((l) => l.coalesced === 'leader')).toMatchObject({ outcome: 'cancelled' });
      const next = await read(await a.handler(ask(p)));
      const usage = Math.ceil(JSON.stringify(call?.body.messages).length / 4) + (call?.tokensSent ?? 0);
      expect(tokensLeft(leader.res) - tokensLeft(next.res)).toBe(usage);
    },
  );

  it.each<'memory' | Backend>(['memory', 'tcp', 'rest'])(
    'everyone leaves: the upstream is aborted (%s)',
    async (backend) => {
      const env = backend === 'memory' ? {} : { ...onRedis(backend), REPLY_LEASE_MS: '600' };
      const [a, b] = pair(env);
      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`everyone leaves (${backend})`);
      const leader = new UiStream(await a.handler(ask(p)));
      const followerInstance = backend === 'memory' ? a : b;
      const followers = [
        new UiStream(await followerInstance.handler(ask(p))),
        new UiStream(await followerInstance.handler(ask(p))),
      ];
      await eventually(() => followers.every((f) => f.deltas.length === 2));
      const call = h.fake.calls[0];
      await followers[0]?.cancel();
      await leader.cancel();
      expect(call?.aborted).toBe(false); // one reader is left
      await followers[1]?.cancel();
      await eventually(() => call?.aborted === true, 10_000);
      expect(h.fake.calls).toHaveLength(1);
    },
  );

  const failures: [name: string, env: Record<string, string>, behaviours: Behaviour[], status: number][] = [
    ['a 400 (context length)', {}, [faults.contextLength()], 400],
    [
      'a 503 after its retry',
      { UPSTREAM_MAX_ATTEMPTS: '2', RETRY_BASE_DELAY_MS: '5', RETRY_MAX_DELAY_MS: '10' },
      [faults.serverError(503), faults.serverError(503)],
      503,
    ],
  ];

  it.each(failures)(
    'the leader’s upstream fails before the first token with %s: every follower gets the same error, nothing is cached',
    async (_name, env, behaviours, status) => {
      const { handler, logs } = instance({ CACHE_TTL: '10 m', ...env });
      const go = gate();
      const [first, ...rest] = behaviours;
      if (!first) throw new Error('no behaviour');
      h.fake.script({ kind: 'held', until: go.until, answer: first }, ...rest);
      const p = prompt('a failing leader');
      const requests = Array.from({ length: 5 }, () => ask(p));
      const answering = requests.map((req) => handler(req));
      // Release the error only once all five have joined the one upstream call.
      await eventually(() => requests.every(joined) && h.fake.calls.length === 1, 10_000);
      go.open();
      const responses = await Promise.all(answering);
      const bodies = await Promise.all(
        responses.map((r) => r.json() as Promise<{ error: { code: string } }>),
      );
      const leaderCode = bodies[0]?.error.code;
      expect(responses.map((r) => r.status)).toEqual(Array(5).fill(status));
      expect(bodies.map((b) => b.error.code)).toEqual(Array(5).fill(leaderCode));
      expect(
        count(
          responses.map((r) => r.headers.get('x-coalesced')),
          'leader',
        ),
      ).toBe(1);
      expect(h.fake.calls).toHaveLength(behaviours.length);
      await eventually(() => logs.length === 5);
      expect(logs.every((l) => l.status === status && l.error_code === leaderCode)).toBe(true);
      // Not cached: the same question asks the upstream again (and now gets an answer).
      const again = await read(await handler(ask(p)));
      expect(again.header('x-cache')).toBe('MISS');
      expect(again.text).toBe(demoReply(p));
      expect(h.fake.calls).toHaveLength(behaviours.length + 1);
    },
  );

  it.each<Backend>(['tcp', 'rest'])(
    'across instances (%s): followers elsewhere get the leader’s error status and code, and it is not cached',
    async (backend) => {
      const [a, b] = pair({ ...onRedis(backend), CACHE_TTL: '10 m' });
      const go = gate();
      h.fake.script({ kind: 'held', until: go.until, answer: faults.contextLength() });
      const p = prompt(`a failing leader elsewhere (${backend})`);
      const leaderRequest = ask(p);
      const leading = a.handler(leaderRequest);
      await eventually(() => joined(leaderRequest) && h.fake.calls.length === 1, 10_000);
      const requests = [ask(p), ask(p), ask(p)];
      const following = requests.map((req) => b.handler(req));
      await eventually(() => requests.every(joined), 10_000);
      go.open();
      const leader = await leading;
      const followers = await Promise.all(following);
      expect(leader.status).toBe(400);
      const code = await errorCode(leader);
      for (const follower of followers) {
        expect(follower.status).toBe(400);
        expect(follower.headers.get('x-coalesced')).toBe('follower');
        expect(await errorCode(follower)).toBe(code);
      }
      expect(h.fake.calls).toHaveLength(1);
      const again = await read(await b.handler(ask(p)));
      expect(again.header('x-cache')).toBe('MISS');
      expect(again.text).toBe(demoReply(p));
      expect(h.fake.calls).toHaveLength(2);
    },
  );
});

/**
 * The leader's process dies. Instance A is a real server process (server/main.ts, as `npm run dev`/`start` run it)
 * and is SIGKILLed: no drain, no finish written, its Redis connection simply gone, exactly as a crash or an OOM kill.
 * A child process costs a second or two to start, once for the whole block, and is the only honest way to stop a
 * lease being renewed without the leader's code knowing (cutting its Redis connection would leave it alive to notice).
 * Instance B, in this process, follows two of A's replies: one already streaming, one not yet started.
 */
describe('a leader that dies', () => {
  const LEASE_MS = 1_000;
  // One deployment: both instances under one prefix, so they share the reply log.
  const PREFIX = uniquePrefix('replies-dead');
  let child: ChildProcess | undefined;
  let port = 0;
  afterAll(() => {
    if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  beforeAll(async () => {
    // The settings testConfig gives in-process instances, so both compute the same reply keys.
    const env = {
      ENV_FILE: '/nonexistent/.env',
      PORT: '0', // it says which port it bound
      HOST: '127.0.0.1',
      ...TEST_ENV,
      OPENAI_BASE_URL: h.fake.url,
      REDIS_URL: REDIS_TEST_URL,
      RATE_LIMIT_PREFIX: PREFIX,
      REPLY_LEASE_MS: String(LEASE_MS),
    };
    const { OPENAI_API_KEY: _key, OPENAI_BASE_URL: _url, ...inherited } = process.env;
    const started = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    let output = '';
    const record = (data: Buffer) => {
      output += data.toString();
      recordOutput(data.toString());
    };
    started.stdout?.on('data', record);
    started.stderr?.on('data', record);
    const listening = /listening on http:\/\/127\.0\.0\.1:(\d+)\//;
    await eventually(() => listening.test(output) || started.exitCode !== null, 25_000);
    port = Number(listening.exec(output)?.[1]);
    if (!port) throw new Error(`instance A did not start:\n${output}`);
  });

  it('its followers elsewhere end with a clean reply_interrupted once the lease lapses, or take over if nothing was sent yet', async () => {
    // B, in this process: on Redis with the same lease; it sees A's socket address as the caller, as A does.
    const b = instance({
      REDIS_URL: REDIS_TEST_URL,
      RATE_LIMIT_PREFIX: PREFIX,
      REPLY_LEASE_MS: String(LEASE_MS),
    });
    const streaming = prompt('the leader dies mid-reply');
    const waiting = prompt('the leader dies before its first token');
    h.fake.script(paused(gate().until), { kind: 'held', until: gate().until, answer: { kind: 'reply' } });
    const onA = (text: string) =>
      fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: text }] }),
      });
    const first = await onA(streaming);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-coalesced')).toBe('leader');
    const second = onA(waiting).catch(() => undefined); // never answered: A dies first
    await eventually(() => h.fake.calls.length === 2, 10_000);

    const fromA = { ip: '127.0.0.1' };
    const follower = new UiStream(await b.handler(ask(streaming, fromA)));
    expect(follower.header('x-coalesced')).toBe('follower');
    await eventually(() => follower.deltas.length === 2, 10_000);
    const early = ask(waiting, fromA);
    const answering = b.handler(early);
    await eventually(() => joined(early), 10_000);
    const alsoEarly = ask(waiting, fromA); // the same on B: it shares the first one's tail, and then its new leader
    const alsoAnswering = b.handler(alsoEarly);
    await eventually(() => joined(alsoEarly), 10_000);

    child?.kill('SIGKILL');
    const killedAt = performance.now();
    await follower.ended;
    const midReplyMs = performance.now() - killedAt;
    const notStarted = await answering;
    const notStartedMs = performance.now() - killedAt;

    // Started: the text so far, then the error in the stream, as useChat shows it.
    expect(follower.text).toBe(firstTwo(demoReply(streaming)));
    expect(follower.errors).toEqual(['The reply was interrupted. Please send your message again.']);
    expect(follower.finished).toBe(false);
    // Not started: its client has nothing yet, so B claims the reply again and produces it itself, once.
    expect(notStarted.status).toBe(200);
    expect(notStarted.headers.get('x-coalesced')).toBe('leader');
    expect((await read(notStarted)).text).toBe(demoReply(waiting));
    const also = await alsoAnswering;
    expect(also.headers.get('x-coalesced')).toBe('follower');
    expect((await read(also)).text).toBe(demoReply(waiting));
    expect(h.fake.calls).toHaveLength(3); // one upstream call for both
    expect(JSON.stringify(h.fake.calls[2]?.body.messages)).toContain(waiting);
    await eventually(() => b.logs.length === 3);
    const interrupted = b.logs.filter((l) => !l.took_over);
    expect(interrupted).toEqual([
      expect.objectContaining({ status: 200, error_code: 'reply_interrupted', coalesced: 'follower' }),
    ]);
    const tookOver = b.logs
      .filter((l) => l.took_over)
      .map(({ coalesced, outcome, error_code }) => ({ coalesced, outcome, error_code }));
    expect(tookOver).toEqual(
      expect.arrayContaining([
        { coalesced: 'leader', outcome: 'complete', error_code: undefined },
        { coalesced: 'follower', outcome: 'complete', error_code: undefined },
      ]),
    );
    expect(tookOver).toHaveLength(2);
    // Reported, not asserted: the lease is 1 s, and readers look every 250 ms at most.
    console.log(
      `dead leader: the follower mid-reply ended ${Math.round(midReplyMs)} ms after SIGKILL, the one before its first token took over and got its first token ${Math.round(notStartedMs)} ms after; lease ${LEASE_MS} ms`,
    );
    await first.body?.cancel().catch(() => {});
    await second;
  });
});

/**
 * Instance A on Redis with its admissions held, B beside it under the same settings (`shared`): A's request for `p`
 * (with `signal`, if given) has claimed its reply, and B's identical request, from another caller, follows that
 * claim. The test opens `release` to let A's admission go on.
 */
async function followingHeldClaim(
  shared: Record<string, string>,
  onlyA: Record<string, string>,
  p: string,
  signal?: AbortSignal,
) {
  const env: Record<string, string> = { ...onRedis('tcp'), ...shared };
  const release = gate();
  let booking = false;
  const asked = () => {
    booking = true;
  };
  const a = instance({ ...env, ...onlyA }, undefined, { tcpRedis: holdingBookings(release.until, asked) });
  const b = instance(env);
  const onA = a.handler(signal ? new Request(ask(p), { signal }) : ask(p));
  await eventually(() => booking, 10_000);
  // A's claim lands while its admission is held (its connection may still be opening: wait for the key itself).
  const probe = tcpRedis(REDIS_TEST_URL, 2_000);
  try {
    const claimed = async () => (await probe.raw.keys(`${env.RATE_LIMIT_PREFIX}:reply:*`)).length > 0;
    await eventually(claimed, 10_000);
  } finally {
    await probe.close();
  }
  const onB = ask(p, { ip: OTHER_IP });
  const answering = b.handler(onB);
  await eventually(() => joined(onB), 10_000);
  return { a, b, release, onA, answering };
}

describe('the reply log’s claim, sent with the admission', () => {
  it('a refused request gives its claim up, and an identical request that followed it takes over', async () => {
    // One deployment, replies shared by all callers; A's callers have a budget below any request's worst case.
    const shared = { CACHE_SCOPE: 'global', MAX_OUTPUT_TOKENS: '100' };
    const p = prompt('claimed, then refused');
    const {
      b,
      release,
      onA: refusedOnA,
      answering,
    } = await followingHeldClaim(shared, { TOKEN_BUDGET: '101' }, p);
    expect(h.fake.calls).toHaveLength(0);
    release.open();
    const refused = await refusedOnA;
    expect(refused.status).toBe(429);
    expect(await errorCode(refused)).toBe('token_budget_exceeded');
    // B was told its leader gave up before anything: it claims again, leads, and its client never sees the difference.
    const res = await answering;
    expect(res.status).toBe(200);
    expect(res.headers.get('x-coalesced')).toBe('leader');
    expect((await read(res)).text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(1);
    await eventually(() => b.logs.length === 1);
    expect(b.logs[0]).toMatchObject({
      status: 200,
      outcome: 'complete',
      coalesced: 'leader',
      took_over: true,
    });
  });

  it('a leader whose client left while it was being admitted gives the reply up to its follower', async () => {
    const p = prompt('left while admitted');
    const client = new AbortController();
    const {
      a,
      b,
      release,
      onA: leaving,
      answering,
    } = await followingHeldClaim({ CACHE_SCOPE: 'global' }, {}, p, client.signal);
    client.abort(); // A's reader leaves before A is admitted: nothing may reject unheard (it would end the process)
    await sleep(50);
    release.open();
    const left = await leaving;
    await left.text().catch(() => {});
    await eventually(() => a.logs.length === 1, 10_000);
    expect(a.logs[0]?.error_code).toBe('client_closed_request');
    const res = await answering;
    expect(res.headers.get('x-coalesced')).toBe('leader');
    expect((await read(res)).text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(1); // A never called the upstream
    await eventually(() => b.logs.length === 1);
    expect(b.logs[0]).toMatchObject({ status: 200, coalesced: 'leader', took_over: true });
  });

  it('is not sent for a caller this instance refused lately, until its retry-after', async () => {
    let offset = 0;
    const env: Record<string, string> = {
      ...onRedis('tcp'),
      RATE_LIMIT_REQUESTS: '1',
      RATE_LIMIT_WINDOW: '60 s',
    };
    const i = instance(env, { now: () => Date.now() + offset });
    const monitor = await monitorRedis();
    const direct = tcpRedis(REDIS_TEST_URL, 5_000);
    try {
      const claims = () =>
        monitor.commands.filter(
          // The claim script names 3 keys (the others 4), the reply's pointer first.
          (args) =>
            /^evalsha$/i.test(args[0] ?? '') &&
            args[2] === '3' &&
            args[3]?.startsWith(`${env.RATE_LIMIT_PREFIX}:reply:{`),
        ).length;
      /** Claims seen once Redis has run everything the refused request sent (a marker sent after it arrives after). */
      const refusedWith = async (what: string) => {
        const res = await i.handler(ask(prompt(what)));
        expect(res.status).toBe(429);
        const marker = `marker-${what}-${env.RATE_LIMIT_PREFIX}`;
        await direct.redis.get(marker);
        await eventually(() => monitor.commands.some((args) => args.includes(marker)), 10_000);
        return claims();
      };
      expect((await read(await i.handler(ask(prompt('admitted'))))).text).toBeTruthy();
      await eventually(() => claims() === 1, 10_000);
      // Refused, but not foreseen: its claim went with its admission, and was given up.
      expect(await refusedWith('refused, not foreseen')).toBe(2);
      // Refused again within its retry-after: its admission alone.
      expect(await refusedWith('refused, foreseen')).toBe(2);
      // Past the retry-after this instance remembered (Redis, on its own clock, still refuses): claimed ahead again.
      offset += 61_000;
      expect(await refusedWith('refused, forgotten')).toBe(3);
    } finally {
      monitor.close();
      await direct.close();
    }
  });
});

describe('the response cache (CACHE_TTL)', () => {
  const CACHE = { CACHE_TTL: '10 m' };

  /** Asks, reads the whole reply, and waits for its log line: by then the reply is stored, if it is stored at all. */
  async function settled(i: Instance, req: Request): Promise<{ res: Response; stream?: UiStream }> {
    const before = i.logs.length;
    const res = await i.handler(req);
    const stream = res.status === 200 ? await read(res) : undefined;
    if (!stream) await res.text();
    await eventually(() => i.logs.length > before, 10_000);
    return { res, ...(stream && { stream }) };
  }

  it('a hit: no upstream call, the same text in the same chunks, X-Cache: HIT, logged, and no tokens charged', async () => {
    const i = instance({ ...CACHE, TOKEN_BUDGET: '1000000' });
    const p = prompt('cache me');
    const miss = await settled(i, ask(p));
    expect(miss.stream?.header('x-cache')).toBe('MISS');
    expect(miss.stream?.header('x-coalesced')).toBe('leader');
    expect(i.logs.at(-1)).toMatchObject({ cache: 'miss', coalesced: 'leader', outcome: 'complete' });
    const hit = await settled(i, ask(p));
    const again = await settled(i, ask(p));
    expect(h.fake.calls).toHaveLength(1);
    for (const { stream } of [hit, again]) {
      expect(stream?.header('x-cache')).toBe('HIT');
      expect(stream?.header('x-coalesced')).toBeNull();
      expect(stream?.errors).toEqual([]);
      expect(stream?.text).toBe(demoReply(p));
      // Replayed as a stream, in the chunks the upstream sent.
      expect(stream?.deltas).toEqual(miss.stream?.deltas);
      expect(stream?.deltas.length).toBeGreaterThan(5);
    }
    expect(i.logs.at(-1)).toMatchObject({ cache: 'hit', status: 200, outcome: 'complete' });
    expect(i.logs.at(-1)?.coalesced).toBeUndefined();
    // The budget: each request reserves the same worst case. The miss's real cost is gone from what the hit sees;
    // the hit cost nothing, so the next request sees exactly as much left as the hit did.
    const afterMiss = tokensLeft(hit.res);
    expect(afterMiss).toBeLessThan(tokensLeft(miss.res));
    expect(tokensLeft(again.res)).toBe(afterMiss);
  });

  it('deployments sharing one Redis under their own RATE_LIMIT_PREFIX share no replies', async () => {
    const ours = instance({ ...CACHE, ...onRedis('tcp') });
    const theirs = instance({ ...CACHE, ...onRedis('tcp') }); // another prefix: another deployment
    const p = prompt('one Redis, two deployments');
    expect((await settled(ours, ask(p))).stream?.header('x-cache')).toBe('MISS');
    await eventually(async () => (await settled(ours, ask(p))).stream?.header('x-cache') === 'HIT', 10_000);
    const other = await settled(theirs, ask(p));
    expect(other.stream?.header('x-cache')).toBe('MISS');
    expect(other.stream?.header('x-coalesced')).toBe('leader');
    expect(h.fake.calls).toHaveLength(2);
  });

  it('a hit counts against the request rate like any request', async () => {
    const i = instance({ ...CACHE, RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_WINDOW: '60 s' });
    const p = prompt('limited hits');
    await settled(i, ask(p));
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
    const refused = await i.handler(ask(p));
    expect(refused.status).toBe(429);
    expect(await errorCode(refused)).toBe('rate_limited');
  });

  it('identical requests arriving together share the hit their one claim found (tcp)', async () => {
    const env = { ...CACHE, ...onRedis('tcp'), RATE_LIMIT_REQUESTS: '100' };
    const p = prompt('popular');
    await settled(instance(env), ask(p)); // produced and stored by another instance
    // This one: its claims held, its admissions counted.
    const held = gate();
    let claims = 0;
    let bookings = 0;
    const counting = holdingScripts('redis', 'ZCARD', Promise.resolve(), () => bookings++);
    const j = instance(env, undefined, { tcpRedis: holdingClaims(held.until, () => claims++, counting) });
    const together = Array.from({ length: 8 }, () => j.handler(ask(p)));
    await eventually(() => bookings === 8, 10_000); // each has claimed ahead of its admission, or waits on a claim
    held.open();
    const streams = await Promise.all(together.map(async (res) => read(await res)));
    expect(streams.map((s) => s.header('x-cache'))).toEqual(Array(8).fill('HIT'));
    expect(streams.map((s) => s.text)).toEqual(Array(8).fill(demoReply(p)));
    expect(claims).toBe(1); // not one each, one after the other
    expect(h.fake.calls).toHaveLength(1);
  });

  it('CACHE_REPLAY=paced replays a hit at the original speed', async () => {
    const text = 'one two three four five six seven';
    const paced = instance({ ...CACHE, CACHE_REPLAY: 'paced' });
    const p = prompt('paced replay');
    h.fake.script({ kind: 'paced', tokenDelayMs: 60, text });
    const original = await settled(paced, ask(p));
    expect(original.stream?.text).toBe(text);
    const startedAt = performance.now();
    const replay = await settled(paced, ask(p));
    const tookMs = performance.now() - startedAt;
    expect(replay.stream?.header('x-cache')).toBe('HIT');
    expect(replay.stream?.deltas).toEqual(original.stream?.deltas);
    // Seven tokens 60 ms apart: the paced replay spans the same ~360 ms (a lower bound only: a busy box is slower).
    expect(tookMs).toBeGreaterThanOrEqual(300);
    expect(h.fake.calls).toHaveLength(1);
  });

  it('an expired entry is a miss (memory, moving the clock)', async () => {
    let offset = 0;
    const i = instance(CACHE, { now: () => Date.now() + offset });
    const p = prompt('expire me');
    await settled(i, ask(p));
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
    offset += 9 * 60_000;
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
    offset += 2 * 60_000;
    const expired = await settled(i, ask(p));
    expect(expired.stream?.header('x-cache')).toBe('MISS');
    expect(expired.stream?.text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(2);
  });

  it('Cache-Control: no-store and no-cache bypass it: X-Cache: BYPASS, and the upstream answers', async () => {
    const i = instance(CACHE);
    const p = prompt('bypass me');
    await settled(i, ask(p));
    for (const [header, calls] of [
      ['no-store', 2],
      ['no-cache', 3],
      ['max-age=0, No-Store', 4],
    ] as const) {
      const { stream } = await settled(i, ask(p, { headers: { 'cache-control': header } }));
      expect(stream?.header('x-cache')).toBe('BYPASS');
      expect(stream?.text).toBe(demoReply(p));
      expect(h.fake.calls).toHaveLength(calls);
      expect(i.logs.at(-1)).toMatchObject({ cache: 'bypass' });
    }
    // Bypassing never removed the stored reply.
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
    expect(h.fake.calls).toHaveLength(4);
  });

  it('ids, JSON key order and whitespace never split the key; a different parameter does', async () => {
    const i = instance(CACHE);
    const p = prompt('one key');
    await settled(i, ask(p, { chatId: 'chat-a' }));
    // Another chat id and message id, keys in another order, and whitespace everywhere.
    const reordered = `{
      "trigger" :  "submit-message",
      "messages" : [ { "parts" : [ { "text" : ${JSON.stringify(p)} , "type" : "text" } ] ,
                       "role" : "user" , "id" : "some-other-message-id" } ] ,
      "id" : "chat-b"
    }`;
    const same = await settled(i, chatRequest(reordered, { headers: { 'x-real-ip': TEST_IP } }));
    expect(same.stream?.header('x-cache')).toBe('HIT');
    // The default model and maxTokens spelled out are the same request as leaving them out.
    const spelled = { model: 'test-model', maxTokens: h.config.caps.maxOutputTokens };
    expect((await settled(i, ask(p, { body: spelled }))).stream?.header('x-cache')).toBe('HIT');
    expect(h.fake.calls).toHaveLength(1);

    const variants = [{ temperature: 0.5 }, { model: 'test-model-large' }, { maxTokens: 50 }];
    for (const [n, body] of variants.entries()) {
      const other = await settled(i, ask(p, { body }));
      expect(other.stream?.header('x-cache')).toBe('MISS');
      expect(h.fake.calls).toHaveLength(2 + n);
    }
    // Each variant is stored under its own key.
    for (const body of variants)
      expect((await settled(i, ask(p, { body }))).stream?.header('x-cache')).toBe('HIT');
    expect(h.fake.calls).toHaveLength(1 + variants.length);
  });

  it('CACHE_SCOPE=caller (the default): caller B never gets caller A’s reply; global: B does', async () => {
    const perCaller = instance(CACHE);
    const p = prompt('my own reply');
    await settled(perCaller, ask(p));
    const b = await settled(perCaller, ask(p, { ip: OTHER_IP }));
    expect(b.stream?.header('x-cache')).toBe('MISS');
    expect(h.fake.calls).toHaveLength(2);
    expect((await settled(perCaller, ask(p))).stream?.header('x-cache')).toBe('HIT');
    expect((await settled(perCaller, ask(p, { ip: OTHER_IP }))).stream?.header('x-cache')).toBe('HIT');
    expect(h.fake.calls).toHaveLength(2);

    const global = instance({ ...CACHE, CACHE_SCOPE: 'global' });
    const q = prompt('everyone’s reply');
    await settled(global, ask(q));
    const shared = await settled(global, ask(q, { ip: OTHER_IP }));
    expect(shared.stream?.header('x-cache')).toBe('HIT');
    expect(shared.stream?.text).toBe(demoReply(q));
    expect(h.fake.calls).toHaveLength(3);
  });

  const earlier = [
    { role: 'user', text: 'one' },
    { role: 'assistant', text: 'two' },
    { role: 'user', text: 'three' },
    { role: 'assistant', text: 'four' },
  ] as const;
  const never: [name: string, env: Record<string, string>, first: Behaviour | undefined, ask: Ask][] = [
    ['an error', {}, faults.contextLength(), {}],
    ['a reply cut mid-stream', {}, { kind: 'cut', afterTokens: 2 }, {}],
    [
      'the fallback message',
      { FALLBACK_MESSAGE: 'Sorry, the assistant is busy.', UPSTREAM_MAX_ATTEMPTS: '1' },
      faults.serverError(500),
      {},
    ],
    ['a trimmed conversation', { MAX_MESSAGES: '3' }, undefined, { earlier }],
    ['a reply the content filter ended', {}, { kind: 'reply', finishReason: 'content_filter' }, {}],
  ];

  it.each(never)('never stores %s', async (name, env, first, options) => {
    const i = instance({ ...CACHE, ...env });
    if (first) h.fake.script(first);
    const p = prompt(`never cached: ${name}`);
    const original = await settled(i, ask(p, options));
    const again = await settled(i, ask(p, options));
    expect(again.res.headers.get('x-cache')).toBe('MISS');
    expect(again.stream?.text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(2);
    // What the first reply was, so each row tests what it says.
    const stream = original.stream;
    if (name === 'an error') expect(original.res.status).toBe(400);
    if (name === 'a reply cut mid-stream') expect(stream?.errors).toHaveLength(1);
    if (name === 'the fallback message') expect(stream?.text).toBe('Sorry, the assistant is busy.');
    if (name === 'a trimmed conversation') expect(original.res.headers.get('x-chat-trimmed')).toBe('2');
    if (name === 'a reply the content filter ended')
      expect(stream?.chunks.find((c) => c.type === 'finish')).toMatchObject({
        finishReason: 'content-filter',
      });
  });

  it('never stores a reply stopped because its only reader left', async () => {
    const i = instance(CACHE);
    const go = gate();
    h.fake.script(paused(go.until));
    const p = prompt('never cached: abandoned');
    const abandoned = new UiStream(await i.handler(ask(p)));
    await eventually(() => abandoned.deltas.length === 2);
    await abandoned.cancel();
    await eventually(() => h.fake.calls[0]?.aborted === true, 10_000);
    await eventually(() => i.logs.length === 1, 10_000);
    const again = await settled(i, ask(p));
    expect(again.stream?.header('x-cache')).toBe('MISS');
    expect(again.stream?.text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(2);
  });

  it.each<Backend>(['tcp', 'rest'])(
    'on Redis (%s): a second instance gets the hit, chunked, without an upstream call',
    async (backend) => {
      const [a, b] = pair({ ...CACHE, ...onRedis(backend) });
      const p = prompt(`cached in Redis (${backend})`);
      const miss = await settled(a, ask(p));
      expect(miss.stream?.header('x-cache')).toBe('MISS');
      // The leader writes its end to Redis just after its own client has it: until then B follows it instead.
      let hit: UiStream | undefined;
      await eventually(async () => {
        hit = (await settled(b, ask(p))).stream;
        return hit?.header('x-cache') === 'HIT';
      }, 10_000);
      expect(hit?.text).toBe(demoReply(p));
      expect(hit?.deltas).toEqual(miss.stream?.deltas);
      expect(b.logs.at(-1)).toMatchObject({ cache: 'hit' });
      expect(h.fake.calls).toHaveLength(1);
      // And the instance that produced it hits too.
      expect((await settled(a, ask(p))).stream?.header('x-cache')).toBe('HIT');
      expect(h.fake.calls).toHaveLength(1);
    },
  );

  it('on Redis: the request right after a reply has ended is a hit from memory until the end is in Redis, then from Redis', async () => {
    const finishing = gate();
    const i = instance({ ...CACHE, ...onRedis('tcp') }, undefined, {
      tcpRedis: holdingFinish(finishing.until),
    });
    const p = prompt('the moment after');
    expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('MISS');
    // Its end is held on the way to Redis: there the reply still looks live, and the next request would follow it.
    const hit = await settled(i, ask(p));
    expect(hit.stream?.header('x-cache')).toBe('HIT');
    expect(hit.stream?.text).toBe(demoReply(p));
    expect(h.fake.calls).toHaveLength(1);
    finishing.open();
    // Then hits come from Redis (a claim each), which a regenerate on another instance may have replaced.
    const monitor = await monitorRedis();
    const direct = tcpRedis(REDIS_TEST_URL, 5_000);
    try {
      await eventually(async () => {
        const before = monitor.commands.length;
        expect((await settled(i, ask(p))).stream?.header('x-cache')).toBe('HIT');
        // Redis runs commands in order: once a marker sent after the hit is seen, anything the hit sent was too.
        const marker = `marker-${p}-${before}`;
        await direct.redis.get(marker);
        await eventually(() => monitor.commands.some((args) => args.includes(marker)), 10_000);
        const since = monitor.commands.slice(before);
        return since.some(
          (args) => /^evalsha$/i.test(args[0] ?? '') && args.some((a) => a.includes(':reply:{')),
        );
      }, 10_000);
      expect(h.fake.calls).toHaveLength(1);
    } finally {
      monitor.close();
      await direct.close();
    }
  });

  it.each<Backend>(['tcp', 'rest'])(
    'on Redis (%s): a no-store request, or a no-cache one that fails, never evicts the cached reply',
    async (backend) => {
      const [a, b] = pair({ ...CACHE, ...onRedis(backend) });
      const p = prompt(`stays cached in Redis (${backend})`);
      const original = await settled(a, ask(p));
      /** A hit of the original: until a leader's end is in Redis, the next request follows it instead (for free). */
      const hitsTheOriginal = async () => {
        let hit: UiStream | undefined;
        await eventually(async () => {
          hit = (await settled(b, ask(p))).stream;
          return hit?.header('x-cache') === 'HIT';
        }, 10_000);
        expect(hit?.deltas).toEqual(original.stream?.deltas);
      };
      await hitsTheOriginal();
      const bypass = await settled(a, ask(p, { headers: { 'cache-control': 'no-store' } }));
      expect(bypass.stream?.header('x-cache')).toBe('BYPASS');
      expect(h.fake.calls).toHaveLength(2);
      await hitsTheOriginal();
      h.fake.script(faults.contextLength());
      const failed = await settled(a, ask(p, { headers: { 'cache-control': 'no-cache' } }));
      expect(failed.res.status).toBe(400);
      await hitsTheOriginal();
      expect(h.fake.calls).toHaveLength(3); // every hit above was the original
    },
  );

  it('on Redis: an expired entry is a miss again', async () => {
    const [a, b] = pair({ CACHE_TTL: '1 s', ...onRedis('tcp') });
    const p = prompt('expires in Redis');
    await settled(a, ask(p));
    // Hits (or, for a moment, followers of the finished reply) until Redis lets it go; then the upstream again.
    await eventually(async () => (await settled(b, ask(p))).res.headers.get('x-cache') === 'MISS', 15_000);
    expect(h.fake.calls).toHaveLength(2);
  });
});

describe('resumable streams (RESUME=on)', () => {
  /** Resumes `chatId` on `i`; a 204 until the reply is known there (its record is written as the reply starts). */
  async function resume(i: Instance, chatId: string): Promise<UiStream> {
    let res: Response | undefined;
    await eventually(async () => {
      res = await i.handler(control(chatId, 'GET'));
      if (res.status === 204) return false;
      return true;
    }, 10_000);
    // Streamed in the platform's class for streamed replies, as every other reply is (srvx's, on Node; it answers
    // `instanceof` for any Response, so the constructor tells).
    if (res?.status === 200) expect(res.constructor).toBe(ReplyResponse);
    return new UiStream(res as Response);
  }

  async function statusOf(i: Instance, chatId: string, method: 'GET' | 'DELETE', ip = TEST_IP) {
    const res = await i.handler(control(chatId, method, ip));
    await res.text();
    return res.status;
  }

  const newChat = () => `chat-${RUN}-${++serial}`;

  /**
   * Two instances with RESUME on, and a new chat: the reply runs on `a`; the page reloads onto `reader`, the other
   * instance on Redis (the same one in memory).
   */
  const resumable = (backend: 'memory' | Backend) => {
    const env = {
      RESUME: 'on',
      ...(backend === 'memory' ? {} : { ...onRedis(backend), REPLY_LEASE_MS: '600' }),
    };
    const [a, b] = pair(env);
    return { a, reader: backend === 'memory' ? a : b, chatId: newChat() };
  };

  it.each<'memory' | Backend>(['memory', 'tcp'])(
    'GET resumes a running reply from its start under the same message id; 404 for another caller; 204 when nothing runs (%s)',
    async (backend) => {
      const { a, reader, chatId } = resumable(backend);
      expect(await statusOf(reader, chatId, 'GET')).toBe(204);

      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`resume (${backend})`);
      const post = new UiStream(await a.handler(ask(p, { chatId })));
      await eventually(() => post.deltas.length === 2);
      const resumed = await resume(reader, chatId);
      expect(resumed.header('x-coalesced')).toBeNull();
      expect(await statusOf(reader, chatId, 'GET', OTHER_IP)).toBe(404);
      expect(await statusOf(reader, chatId, 'DELETE', OTHER_IP)).toBe(404);
      await eventually(() => resumed.deltas.length === 2, 10_000);
      expect(resumed.messageId).toBe(post.messageId);
      expect(resumed.text).toBe(firstTwo(demoReply(p)));
      go.open();
      await Promise.all([post.ended, resumed.ended]);
      expect(post.text).toBe(demoReply(p));
      expect(resumed.text).toBe(post.text);
      expect(resumed.finished).toBe(true);
      expect(h.fake.calls).toHaveLength(1);
      await eventually(async () => (await statusOf(reader, chatId, 'GET')) === 204, 10_000);
      expect(reader.logs.some((l) => l.resumed === true && l.status === 200)).toBe(true);
    },
  );

  it.each<'memory' | Backend>(['memory', 'tcp'])(
    'another caller posting under a running chat’s id cannot take it over: its owner still resumes and stops it (%s)',
    async (backend) => {
      const { a, reader, chatId } = resumable(backend);
      const go = gate();
      h.fake.script(paused(go.until), { kind: 'reply' });
      const p = prompt(`owned chat (${backend})`);
      const post = new UiStream(await a.handler(ask(p, { chatId })));
      await eventually(() => post.deltas.length === 2);
      // Another caller reuses the chat id (a guess, or a copied link): its own reply runs, under no chat of its own.
      const intruderPrompt = prompt('intruder');
      const intruder = await read(await a.handler(ask(intruderPrompt, { chatId, ip: OTHER_IP })));
      expect(intruder.text).toBe(demoReply(intruderPrompt));
      const resumed = await resume(reader, chatId);
      await eventually(() => resumed.deltas.length === 2, 10_000);
      expect(resumed.messageId).toBe(post.messageId);
      expect(await statusOf(reader, chatId, 'GET', OTHER_IP)).toBe(404);
      expect(await statusOf(reader, chatId, 'DELETE')).toBe(200);
      await Promise.all([post.ended, resumed.ended]);
      expect(resumed.text).toBe(post.text);
      go.open();
    },
  );

  it('an intruder’s running reply under the same chat id on another instance does not hide the owner’s there (tcp)', async () => {
    const { a, reader: b, chatId } = resumable('tcp');
    const owners = gate();
    const intruders = gate();
    h.fake.script(paused(owners.until), paused(intruders.until));
    const p = prompt('owned across instances');
    const post = new UiStream(await a.handler(ask(p, { chatId })));
    await eventually(() => post.deltas.length === 2);
    const intruderPrompt = prompt('intruder elsewhere');
    const intruder = new UiStream(await b.handler(ask(intruderPrompt, { chatId, ip: OTHER_IP })));
    await eventually(() => intruder.deltas.length === 2);
    // On B, where the intruder's reply runs: the owner still resumes its own, and stops its own.
    const resumed = await resume(b, chatId);
    await eventually(() => resumed.deltas.length === 2, 10_000);
    expect(resumed.messageId).toBe(post.messageId);
    expect(await statusOf(b, chatId, 'DELETE')).toBe(200);
    await Promise.all([post.ended, resumed.ended]);
    expect(resumed.text).toBe(post.text);
    intruders.open();
    await intruder.ended;
    expect(intruder.text).toBe(demoReply(intruderPrompt)); // not the one stopped
    owners.open();
  });

  it('a GET on an instance whose tail of the reply stopped a moment ago reads it afresh (tcp)', async () => {
    const env = { RESUME: 'on', ...onRedis('tcp'), REPLY_LEASE_MS: '60000' };
    const a = instance(env);
    const leaving = gate(); // B's LEAVE held: its stopped tail is still known there meanwhile
    const b = instance(env, undefined, { tcpRedis: holdingScripts('raw', "'readers', -1", leaving.until) });
    const chatId = newChat();
    const go = gate();
    h.fake.script(paused(go.until));
    const p = prompt('resumed past a stopped tail');
    const post = new UiStream(await a.handler(ask(p, { chatId })));
    await eventually(() => post.deltas.length === 2);
    const follower = new UiStream(await b.handler(ask(p)));
    expect(follower.header('x-coalesced')).toBe('follower');
    await eventually(() => follower.deltas.length === 2, 10_000);
    await follower.cancel(); // B's only reader of its tail leaves: the tail stops
    const resumed = await resume(b, chatId);
    await eventually(() => resumed.deltas.length === 2, 10_000);
    go.open();
    await Promise.all([post.ended, resumed.ended]);
    expect(resumed.text).toBe(demoReply(p));
    leaving.open();
  });

  it.each<'memory' | Backend>(['memory', 'tcp'])(
    'the POST’s client leaving does not stop the reply: a later GET gets all of it (%s)',
    async (backend) => {
      const { a, reader, chatId } = resumable(backend);
      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`reload mid-reply (${backend})`);
      const post = new UiStream(await a.handler(ask(p, { chatId })));
      await eventually(() => post.deltas.length === 2);
      await post.cancel(); // the page reloads: its only reader is gone
      // Without RESUME this would stop the upstream at once (memory) or at the next lease renewal (200 ms here).
      await sleep(backend === 'memory' ? 50 : 700);
      const call = h.fake.calls[0];
      expect(call?.aborted).toBe(false);
      const resumed = await resume(reader, chatId);
      go.open();
      await resumed.ended;
      expect(resumed.messageId).toBe(post.messageId);
      expect(resumed.text).toBe(demoReply(p));
      expect(resumed.finished).toBe(true);
      await eventually(() => call?.endedAt !== undefined, 10_000);
      expect(call?.aborted).toBe(false);
      expect(call?.tokensSent).toBe(splitTokens(demoReply(p)).length);
      await eventually(async () => (await statusOf(reader, chatId, 'GET')) === 204, 10_000);
    },
  );

  it.each<'memory' | Backend>(['memory', 'tcp'])(
    'DELETE stops the reply: the upstream is aborted and the readers see it stopped (%s)',
    async (backend) => {
      const { a, reader, chatId } = resumable(backend);
      expect(await statusOf(reader, chatId, 'DELETE')).toBe(200); // nothing to stop: {stopped: false}
      const go = gate();
      h.fake.script(paused(go.until));
      const p = prompt(`stop me (${backend})`);
      const post = new UiStream(await a.handler(ask(p, { chatId })));
      await eventually(() => post.deltas.length === 2);
      const resumed = await resume(reader, chatId);
      const stop = await reader.handler(control(chatId, 'DELETE'));
      expect(stop.status).toBe(200);
      expect(await stop.json()).toEqual({ stopped: true });
      const call = h.fake.calls[0];
      await eventually(() => call?.aborted === true, 10_000);
      await Promise.all([post.ended, resumed.ended]);
      for (const stream of [post, resumed]) {
        expect(stream.text).toBe(firstTwo(demoReply(p)));
        expect(stream.errors).toEqual(['The reply was stopped.']);
      }
      await eventually(async () => (await statusOf(reader, chatId, 'GET')) === 204, 10_000);
    },
  );
});

describe('when the shared log is down', () => {
  it('a request is answered on its own, and its log line says why', async () => {
    // Nothing listens on port 1: every Redis call fails at once. The limiter carries on locally (its default).
    const i = instance({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_TIMEOUT_MS: '50', CACHE_TTL: '10 m' });
    const p = prompt('no Redis');
    const res = await read(await i.handler(ask(p)));
    expect(res.text).toBe(demoReply(p));
    expect(res.header('x-coalesced')).toBe('leader');
    await eventually(() => i.logs.length === 1, 10_000);
    expect(i.logs[0]).toMatchObject({ status: 200, outcome: 'complete', coalesced: 'leader', cache: 'miss' });
    expect(i.logs[0]?.reply_log_error).toMatch(/^reply log: /);
    // Meanwhile this instance keeps the reply itself, so the cache still works for its own callers.
    const again = await read(await i.handler(ask(p)));
    expect(again.header('x-cache')).toBe('HIT');
    expect(h.fake.calls).toHaveLength(1);
  });
});

describe('what a reply costs the shared log', () => {
  it('a reply read whole is two scripts (its claim and its end), a paced one three (and an opening between)', async () => {
    // A lease far longer than any reply here, so that no renewal of a slow one on a busy machine can count.
    const env: Record<string, string> = { ...onRedis('tcp'), REPLY_LEASE_MS: '60000' };
    const i = instance(env);
    const monitor = await monitorRedis();
    try {
      const whole = Array.from({ length: 4 }, () => prompt('cost'));
      const paced = Array.from({ length: 2 }, () => prompt('cost'));
      h.fake.script(...whole.map(() => ({ kind: 'whole' }) as const));
      for (const p of whole) expect((await read(await i.handler(ask(p)))).text).toBe(demoReply(p));
      h.fake.script(...paced.map(() => ({ kind: 'paced', tokenDelayMs: 5 }) as const));
      for (const p of paced) expect((await read(await i.handler(ask(p)))).text).toBe(demoReply(p));
      // Each reply's scripts name its key first; the replies ran one after the other, so their keys come in order.
      const replyKeys = () => {
        const scripts = monitor.commands.filter(
          (args) =>
            /^evalsha$/i.test(args[0] ?? '') && args[3]?.startsWith(`${env.RATE_LIMIT_PREFIX}:reply:{`),
        );
        const keys = [...new Set(scripts.map((args) => args[3]))];
        return keys.map((key) => scripts.filter((args) => args[3] === key));
      };
      await eventually(() => replyKeys().length === 6 && replyKeys().every((one) => one.length >= 2), 10_000);
      await sleep(200); // anything more would have come by now
      const [a, b, c, d, e, f] = replyKeys();
      // The claim (3 keys) and the end (4 keys): no opening, no renewal.
      for (const one of [a, b, c, d]) expect(one?.map((args) => args[2])).toEqual(['3', '4']);
      // Tokens 5 ms apart: the opening (the head and the first token) goes before the rest has arrived.
      for (const one of [e, f]) expect(one?.map((args) => args[2])).toEqual(['3', '4', '4']);
      // Nobody followed them and nothing may read them later (no cache, no resume): their ends record no events.
      for (const one of [a, b, c, d, e, f]) expect(one?.at(-1)?.[8]).toBe('');
    } finally {
      monitor.close();
    }
  });
});

describe('a leader that gives its reply up, or is told to stop (lib/replies/leader.ts)', () => {
  /** The reply log of one instance, on `shared` (or none), with the tests' settings. */
  const repliesOn = (shared: SharedLog | undefined) =>
    createReplies({
      config: testConfig({ OPENAI_BASE_URL: h.fake.url }).replies,
      systemPrompt: '',
      tools: [],
      shared,
      shutdown: createShutdown(),
      totalTimeoutMs: 10_000,
      internal: defaultInternal,
      secrets: [],
    });
  const request: ChatRequest = {
    messages: [{ role: 'user', content: 'given up' }],
    model: 'm',
    maxTokens: 10,
    temperature: undefined,
    reasoningEffort: undefined,
    messageId: undefined,
  };
  const options = (signal: AbortSignal): ServeOptions => ({
    callerId: 'c',
    messageId: 'msg',
    signal,
    cacheControl: 'use',
    storable: true,
    chatId: undefined,
  });
  const never = () => new Promise<never>(() => {});

  it('its followers here claim again only once that end is in the shared log', async () => {
    const steps: string[] = [];
    const finishing = gate();
    const log = {
      claim: async (_key: string, claim: { generation: string }) => {
        steps.push('claim');
        return { role: 'leader', generation: claim.generation };
      },
      append: async () => ({ stop: false, readers: 0, called: false }),
      finish: async () => {
        await finishing.until;
        steps.push('finish');
      },
      leave: async () => {},
    } as unknown as SharedLog;
    const replies = repliesOn(log);
    const leader = await replies.claim(request, options(new AbortController().signal));
    const follower = await replies.claim(request, options(new AbortController().signal)); // joins it here
    const read = follower.start(never);
    expect(steps).toEqual(['claim']);
    leader.abandon(); // refused: its end (LEADER_LOST) goes to the shared log, held there for now
    await expect(read.first).rejects.toSatisfy(isLeaderLost);
    const again = replies.claim(request, options(new AbortController().signal)); // the follower takes over
    await sleep(50);
    expect(steps).toEqual(['claim']); // not before the given-up reply's end has landed
    finishing.open();
    (await again).abandon();
    expect(steps).toEqual(['claim', 'finish', 'claim']);
  });

  it('is joined by nobody new once its last reader left, even before its upstream call has ended', async () => {
    const replies = repliesOn(undefined);
    const client = new AbortController();
    const leader = (await replies.claim(request, options(client.signal))).start(never); // an upstream yet to answer
    expect(leader.role).toBe('leader');
    client.abort(); // its only reader leaves: it is told to stop (its upstream call has not noticed yet)
    const next = (await replies.claim(request, options(new AbortController().signal))).start(never);
    expect(next.role).toBe('leader'); // a reply of its own, not a follower of one that can only end stopped
  });
});

describe('a reply nobody reads once it has ended (no cache, no resume)', () => {
  /** The reply-log keys left in Redis under `prefix`, by what they are: the stream (`s`), the state (`m`)... */
  async function keysLeft(prefix: string): Promise<string[]> {
    const probe = tcpRedis(REDIS_TEST_URL, 2_000);
    try {
      const keys = (await probe.raw.keys(`${prefix}:reply:*`)) as string[];
      return keys.map((key) => key.split(':').at(-1) ?? '').sort();
    } finally {
      await probe.close();
    }
  }

  it('is not kept in Redis: its end records no events, and drops those written', async () => {
    const env: Record<string, string> = { ...onRedis('tcp'), REPLY_LEASE_MS: '60000' };
    const ending = gate();
    const i = instance(env, undefined, { tcpRedis: holdingFinish(ending.until) });
    const prefix = env.RATE_LIMIT_PREFIX ?? '';
    h.fake.script({ kind: 'paced', tokenDelayMs: 5 }); // its opening is written first
    const p = prompt('forgotten');
    expect((await read(await i.handler(ask(p)))).text).toBe(demoReply(p));
    expect(await keysLeft(prefix)).toContain('s'); // the opening, in Redis while its end is held
    ending.open();
    await eventually(async () => !(await keysLeft(prefix)).includes('l'), 10_000);
    // Only its small state is left (done, for a reader's late leave), for the grace period; no stream, no lease.
    expect(await keysLeft(prefix)).toEqual(['m']);
  });

  it('is recorded after all when a reader elsewhere followed it while its end was on its way', async () => {
    const env: Record<string, string> = { ...onRedis('tcp'), REPLY_LEASE_MS: '60000' };
    const ending = gate();
    let ends = 0;
    const a = instance(env, undefined, {
      tcpRedis: holdingScripts('raw', "'done', '1'", ending.until, () => ends++),
    });
    const b = instance(env);
    h.fake.script({ kind: 'whole' }); // read whole: nothing of it is in Redis before its end
    const p = prompt('followed at the last moment');
    const leader = await read(await a.handler(ask(p)));
    expect(leader.text).toBe(demoReply(p));
    await eventually(() => ends === 1, 10_000); // its end, held, asks to record nothing
    const onB = ask(p, { ip: TEST_IP });
    const following = b.handler(onB);
    await eventually(() => joined(onB), 10_000); // B claimed while the lease was still held: a follower
    ending.open();
    const follower = await read(await following);
    expect(follower.header('x-coalesced')).toBe('follower');
    expect(follower.text).toBe(demoReply(p));
    expect(ends).toBe(2); // refused (someone reads), then the end with the whole reply
    expect(h.fake.calls).toHaveLength(1);
  });
});

describe('the shared log’s reader (lib/replies/tail.ts)', () => {
  it('catches up a reply recorded in several read batches at once, without waiting for a poll', async () => {
    // Upstash REST (no wakes) with polls a minute apart: a reader that waited for news between batches would stall a
    // minute per batch. A long reply from a real model is one append per token or so, far more than one batch.
    const redis = upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 2_000 });
    const log = createRedisLog(redis, { prefix: uniquePrefix('replies-tail') });
    const head: ReplyEvent = {
      type: 'head',
      head: { served: { model: 'm', provider: 'p', attempts: 1, fallback: 'none' }, messageId: 'msg' },
    };
    await log.claim('k', { generation: 'g', leaseMs: 60_000, follow: true, hit: true });
    await log.append('k', 'g', [head], 60_000);
    const appends = 2 * READ_BATCH + 50;
    for (let n = 0; n < appends; n++)
      await log.append('k', 'g', [{ type: 'delta', delta: `t${n} `, at: n }], 60_000);
    await log.finish('k', 'g', [{ type: 'end', finishReason: 'stop' }], { keepMs: 60_000, cacheable: true });
    const claim = await log.claim('k', { generation: 'g2', leaseMs: 60_000, follow: true, hit: true });
    if (claim.role !== 'hit') throw new Error(`expected a hit, got ${claim.role}`);
    expect(claim.events).toHaveLength(READ_BATCH);
    const live = tailSharedReply(log, {
      key: 'k',
      ...claim,
      pollMs: 60_000,
      leaseMs: 60_000,
      counted: false,
      onDone: () => {},
    });
    const reader = live.reader();
    const events: ReplyEvent[] = [];
    for (let event = await reader.next(); event; event = await reader.next()) events.push(event);
    expect(events).toHaveLength(appends + 2);
    expect(events.at(-1)).toEqual({ type: 'end', finishReason: 'stop' });
  });

  it('reads what was written between its claim and its watch listening: that write woke nobody', async () => {
    const tcp = tcpRedis(REDIS_TEST_URL, 5_000);
    try {
      const log = createRedisLog(tcp.raw, { prefix: uniquePrefix('replies-tail'), subscribe: tcp.subscribe });
      await log.claim('k', { generation: 'g', leaseMs: 60_000, follow: true, hit: true });
      const claim = await log.claim('k', { generation: 'g2', leaseMs: 60_000, follow: true, hit: true });
      if (claim.role !== 'follower') throw new Error(`expected a follower, got ${claim.role}`);
      const head: ReplyEvent = {
        type: 'head',
        head: { served: { model: 'm', provider: 'p', attempts: 1, fallback: 'none' }, messageId: 'msg' },
      };
      await log.append('k', 'g', [head, { type: 'delta', delta: 'first', at: 0 }], 60_000); // before any watch
      // Wakes are counted: with no write after the watch, only its listening can wake the reader. (The reader's
      // 250 ms safety-net poll would deliver the token too, a quarter of a second late: that is what this rules out.)
      let wakes = 0;
      const counted: SharedLog = {
        ...log,
        watch: (key, generation, wake) => {
          const counting = () => {
            wakes++;
            wake();
          };
          return log.watch?.(key, generation, counting) ?? (() => {});
        },
      };
      const live = tailSharedReply(counted, {
        key: 'k',
        ...claim,
        pollMs: 60_000,
        leaseMs: 60_000,
        counted: true,
        onDone: () => {},
      });
      const reader = live.reader();
      expect(await reader.next()).toMatchObject({ type: 'head' });
      expect(await reader.next()).toEqual({ type: 'delta', delta: 'first', at: 0 });
      await eventually(() => wakes === 1, 10_000);
      reader.leave();
    } finally {
      await tcp.close();
    }
  });
});

/**
 * Numbers for the closing note, printed rather than asserted (a loaded CI box would make any bound flaky):
 * `MEASURE_REPLIES=1 npx vitest run tests/replies.test.ts -t measurements`.
 */
describe.runIf(process.env.MEASURE_REPLIES)('measurements', () => {
  const percentile = (values: number[], p: number) => {
    const sorted = [...values].sort((x, y) => x - y);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
  };
  const ms = (value: number) => `${value.toFixed(2)} ms`;

  it('a cache hit’s time to first byte over 200 hits (memory, in-process)', async () => {
    const i = instance({ CACHE_TTL: '10 m' });
    const p = prompt('measure hits');
    await read(await i.handler(ask(p)));
    await eventually(() => i.logs.length === 1);
    const times: number[] = [];
    for (let n = 0; n < 220; n++) {
      const startedAt = performance.now();
      const res = await i.handler(ask(p));
      const reader = res.body?.getReader();
      await reader?.read();
      if (n >= 20) times.push(performance.now() - startedAt); // the first 20 warm up
      while (!(await reader?.read())?.done) {}
      expect(res.headers.get('x-cache')).toBe('HIT');
    }
    console.log(
      `cache hit TTFB over ${times.length}: p50 ${ms(percentile(times, 50))}, p90 ${ms(percentile(times, 90))}, p99 ${ms(percentile(times, 99))}, max ${ms(Math.max(...times))}`,
    );
  });

  it.each<'memory' | Backend>(['memory', 'tcp', 'rest'])(
    'a follower’s time to first token against its leader’s (%s)',
    async (backend) => {
      const [a, b] = pair(backend === 'memory' ? {} : onRedis(backend));
      const follower = backend === 'memory' ? a : b;
      const leaderTtft: number[] = [];
      const followerTtft: number[] = [];
      const lag: number[] = [];
      for (let n = 0; n < 20; n++) {
        // A first token 100-200 ms in (so it lands anywhere in a REST poll's cycle), then a token every 20 ms.
        const firstTokenIn = sleep(100 + Math.floor(Math.random() * 100));
        h.fake.script({ kind: 'held', until: firstTokenIn, answer: { kind: 'paced', tokenDelayMs: 20 } });
        const p = prompt(`measure followers (${backend})`);
        const firstToken = async (i: Instance, req: Request, startedAt: number) => {
          const stream = new UiStream(await i.handler(req));
          await eventually(() => stream.deltas.length > 0, 10_000);
          const at = performance.now();
          await stream.ended;
          return { at, ttft: at - startedAt, role: stream.header('x-coalesced') };
        };
        const leaderReq = ask(p);
        const leaderStart = performance.now();
        const leading = firstToken(a, leaderReq, leaderStart);
        await eventually(() => joined(leaderReq));
        const followerStart = performance.now();
        const [l, f] = await Promise.all([leading, firstToken(follower, ask(p), followerStart)]);
        expect([l.role, f.role]).toEqual(['leader', 'follower']);
        leaderTtft.push(l.ttft);
        followerTtft.push(f.ttft);
        lag.push(f.at - l.at);
      }
      console.log(
        `${backend}: leader TTFT p50 ${ms(percentile(leaderTtft, 50))}, follower TTFT p50 ${ms(percentile(followerTtft, 50))} (joined later), follower's first token after the leader's: p50 ${ms(percentile(lag, 50))}, max ${ms(Math.max(...lag))}`,
      );
    },
  );
});

describe('reply keys', () => {
  it('are the same SHA-256 on the Node server (its own hash) as on the edge (Web Crypto): both can share one Redis', async () => {
    for (const text of ['', 'a', 'é and 🦊', JSON.stringify({ messages: ['x'.repeat(10_000)] })]) {
      expect(await webSha256(text)).toBe(nodePlatform.sha256?.(text));
    }
  });
});

describe('the leader’s mirror to the shared log (lib/replies/mirror.ts)', () => {
  const ev = (text: string): ReplyEvent => ({ type: 'delta', delta: text, at: 0 });
  const head: ReplyEvent = {
    type: 'head',
    head: { served: { model: 'm', provider: 'p', attempts: 1, fallback: 'none' }, messageId: 'msg' },
  };
  /** A log that records what the mirror writes; `calls`: it can call the leader (TCP), as `watchCalls` does. */
  function recordingLog(calls: boolean, answer = { stop: false, readers: 0, called: false }) {
    const writes: string[][] = [];
    let call: (() => void) | undefined;
    const text = (events: readonly ReplyEvent[]) =>
      events.map((e) => (e.type === 'delta' && typeof e.delta === 'string' ? e.delta : e.type));
    const log = {
      append: async (_k: string, _g: string, events: readonly ReplyEvent[]) => {
        writes.push(text(events));
        return answer;
      },
      finish: async (_k: string, _g: string, events: readonly ReplyEvent[]) => {
        writes.push(['finish', ...text(events)]);
      },
      ...(calls && {
        watchCalls: (_k: string, _g: string, onCall: () => void) => {
          call = onCall;
          return () => {
            call = undefined;
          };
        },
      }),
    } as unknown as SharedLog;
    return { log, writes, call: () => call?.() };
  }
  /** A mirror over a reply's own event list, as a leader's: `add` records the event there, then tells the mirror. */
  function mirrored(log: SharedLog, mirrorOptions: Omit<MirrorOptions, 'events'>) {
    const events = new EventList();
    const mirror = mirrorTo(log, { ...mirrorOptions, events });
    return {
      ended: mirror.ended,
      renew: mirror.renew,
      add(event: ReplyEvent, bytesSoFar: number) {
        events.push(event);
        mirror.add(bytesSoFar);
      },
    };
  }
  const options = {
    key: 'k',
    generation: 'g',
    leaseMs: 3_000,
    maxBytes: 1_000_000,
    keep: () => ({ keepMs: 1_000, cacheable: false }),
    forgettable: false,
    onAnswer: () => {},
    onError: () => {},
  };
  afterEach(() => {
    vi.useRealTimers();
  });

  it('with calls, writes an unfollowed reply only with its renewals, and at once when called', async () => {
    vi.useFakeTimers();
    const { log, writes, call } = recordingLog(true);
    const mirror = mirrored(log, options);
    mirror.add(head, 0);
    mirror.add(ev('a'), 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(writes).toEqual([['head', 'a']]); // the opening goes at once: followers wait for it
    mirror.add(ev('b'), 0);
    mirror.add(ev('c'), 0);
    await vi.advanceTimersByTimeAsync(900);
    expect(writes).toHaveLength(1); // nobody follows: no write a tenth of a second at a time
    await vi.advanceTimersByTimeAsync(100); // the renewal, a third of the lease, carries them
    expect(writes).toEqual([
      ['head', 'a'],
      ['b', 'c'],
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(writes.at(-1)).toEqual([]); // nothing pending: a renewal alone
    mirror.add(ev('d'), 0);
    call(); // a follower claimed elsewhere
    await vi.advanceTimersByTimeAsync(0);
    expect(writes.at(-1)).toEqual(['d']);
    mirror.add(ev('e'), 0);
    await vi.advanceTimersByTimeAsync(10); // followed from now on: a moment's batch
    expect(writes.at(-1)).toEqual(['e']);
    mirror.add({ type: 'end', finishReason: 'stop' }, 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(writes.at(-1)).toEqual(['finish', 'end']);
    const count = writes.length;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(writes).toHaveLength(count); // ended: no renewals, no calls heard
  });

  it('writes the end as soon as the write before it is done, with what piled up meanwhile', async () => {
    vi.useFakeTimers();
    const { log, writes } = recordingLog(true);
    let release = () => {};
    const append = log.append.bind(log);
    log.append = async (...args) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return append(...args);
    };
    const mirror = mirrored(log, options);
    mirror.add(head, 0);
    mirror.add(ev('a'), 0);
    await vi.advanceTimersByTimeAsync(0);
    mirror.add(ev('b'), 0); // the opening is still being written
    mirror.add({ type: 'end', finishReason: 'stop' }, 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(writes).toEqual([]);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(writes).toEqual([
      ['head', 'a'],
      ['finish', 'b', 'end'],
    ]);
  });

  it('writes a reply that ends in the burst it started in as one write: its end, with no opening first', async () => {
    vi.useFakeTimers();
    const { log, writes } = recordingLog(true);
    const mirror = mirrored(log, options);
    mirror.add(head, 0);
    mirror.add(ev('a'), 0); // the opening waits for the rest of what has arrived…
    await Promise.resolve(); // …including what a microtask brings (the next token of a batch already read)
    mirror.add(ev('b'), 0);
    mirror.add({ type: 'end', finishReason: 'stop' }, 0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(writes).toEqual([['finish', 'head', 'a', 'b', 'end']]);
  });

  it('ends a reply nobody followed without its events, and writes them when the end says someone reads', async () => {
    vi.useFakeTimers();
    for (const answer of ['ended', 'read'] as const) {
      const { log, writes } = recordingLog(true);
      const finish = log.finish.bind(log);
      log.finish = async (key, generation, events, keep) => {
        await finish(key, generation, events, keep);
        if (keep.unread) writes.push(['unread']);
        return keep.unread ? answer : 'ended';
      };
      const mirror = mirrored(log, { ...options, forgettable: true });
      mirror.add(head, 0);
      mirror.add(ev('a'), 0);
      mirror.add({ type: 'end', finishReason: 'stop' }, 0);
      await vi.advanceTimersByTimeAsync(0);
      await expect(mirror.ended).resolves.toBe(true);
      // The unread end carries nothing; when someone reads after all, the whole reply follows in a second end.
      expect(writes).toEqual(
        answer === 'ended'
          ? [['finish'], ['unread']]
          : [['finish'], ['unread'], ['finish', 'head', 'a', 'end']],
      );
    }
  });

  it('hears a call that was lost (not subscribed yet) in the next renewal’s answer, and writes promptly after', async () => {
    vi.useFakeTimers();
    const answer = { stop: false, readers: 0, called: false };
    const { log, writes } = recordingLog(true, answer);
    const mirror = mirrored(log, options);
    mirror.add(head, 0);
    mirror.add(ev('a'), 0);
    await vi.advanceTimersByTimeAsync(0);
    answer.called = true; // a resumed reader read with `callLeader`, but its PUBLISH reached nobody
    mirror.add(ev('b'), 0);
    await vi.advanceTimersByTimeAsync(1_000); // the renewal carries it, and its answer says someone called
    expect(writes).toEqual([['head', 'a'], ['b']]);
    mirror.add(ev('c'), 0);
    await vi.advanceTimersByTimeAsync(10);
    expect(writes.at(-1)).toEqual(['c']);
  });

  it('ends the log with an error once the reply outgrows the cap, and writes nothing of it after', async () => {
    vi.useFakeTimers();
    const { log, writes } = recordingLog(true);
    const mirror = mirrored(log, { ...options, maxBytes: 100 });
    mirror.add(head, 10);
    mirror.add(ev('a'), 50);
    await vi.advanceTimersByTimeAsync(0);
    mirror.add(ev('b'), 90);
    mirror.add(ev('c'), 150); // past the cap: the error goes in its place
    mirror.add(ev('d'), 200);
    mirror.add({ type: 'end', finishReason: 'stop' }, 210);
    await vi.advanceTimersByTimeAsync(0);
    await expect(mirror.ended).resolves.toBe(true);
    expect(writes).toEqual([
      ['head', 'a'],
      ['finish', 'b', 'error'],
    ]);
  });

  it('without calls (Upstash REST), writes an unfollowed reply a tenth of a second at a time', async () => {
    vi.useFakeTimers();
    const { log, writes } = recordingLog(false);
    const mirror = mirrored(log, options);
    mirror.add(head, 0);
    mirror.add(ev('a'), 0);
    await vi.advanceTimersByTimeAsync(0);
    mirror.add(ev('b'), 0);
    await vi.advanceTimersByTimeAsync(99);
    expect(writes).toEqual([['head', 'a']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(writes).toEqual([['head', 'a'], ['b']]);
  });
});
