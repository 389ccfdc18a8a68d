import type { Redis } from '@upstash/redis';
import IORedis from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { upstashRestRedis } from '../lib/redis/upstash-rest';
import type { ReplyEvent } from '../lib/replies/events';
import { createRedisLog, FIRST_CURSOR, type Subscribe } from '../lib/replies/redis-log';
import type { SharedLog } from '../lib/replies/shared-log';
import { tcpRedis } from '../server/redis-tcp';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';
import { tcpRedisForFile, upstashBridgeForFile } from './support/redis-for-file';

const bridge = await upstashBridgeForFile();
const tcp = tcpRedisForFile(2_000);
const raw = new IORedis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
afterAll(() => raw.disconnect());

interface Client {
  readonly redis: Redis;
  readonly subscribe?: Subscribe;
}

// As the proxy connects it (`RedisConnection.raw`: answers undecoded), and once with the client's JSON decoding on,
// which a log built on any other client gets.
const rest = (raw: boolean) =>
  upstashRestRedis({ url: bridge.url, token: bridge.token, timeoutMs: 2_000, raw });
const backends: [name: string, client: () => Client][] = [
  ['REDIS_URL', () => ({ redis: tcp.raw, subscribe: tcp.subscribe })],
  ['Upstash REST', () => ({ redis: rest(true) })],
  ['Upstash REST, decoding answers', () => ({ redis: rest(false) })],
];

const LONG = 60_000;
const head: ReplyEvent = {
  type: 'head',
  head: {
    served: { model: 'm', provider: 'p', attempts: 1, fallback: 'none' },
    messageId: 'msg-1',
  },
};
const delta = (text: string, at = 0): ReplyEvent => ({ type: 'delta', delta: text, at });
const end: ReplyEvent = { type: 'end', finishReason: 'stop' };

/** Polls until `check` answers something defined: never a fixed sleep, and a generous deadline for a busy machine. */
async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  deadlineMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every key under the prefix, with its PTTL. */
async function ttls(prefix: string): Promise<Map<string, number>> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await raw.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const result = new Map<string, number>();
  for (const key of keys) result.set(key, await raw.pttl(key));
  return result;
}

async function readAll(log: SharedLog, key: string, generation: string, cursor = FIRST_CURSOR) {
  const events: ReplyEvent[] = [];
  let at = cursor;
  for (;;) {
    const answer = await log.read(key, generation, at);
    if (answer.events.length === 0) return { events, cursor: at };
    events.push(...answer.events);
    at = answer.cursor;
  }
}

describe.each(backends)('the Redis reply log (%s)', (name, client) => {
  let prefix: string;
  let log: SharedLog;
  const make = () => {
    prefix = uniquePrefix('reply-log');
    log = createRedisLog(client().redis, { prefix, subscribe: client().subscribe });
    return log;
  };
  const lead = { leaseMs: LONG, follow: true, hit: true };

  it('decides leader, then follower of the live generation, then hit once it is complete and cacheable', async () => {
    make();
    expect(await log.claim('k', { ...lead, generation: 'g1' })).toEqual({ role: 'leader', generation: 'g1' });
    expect(await log.claim('k', { ...lead, generation: 'g2' })).toEqual({
      role: 'follower',
      generation: 'g1',
      events: [],
      cursor: FIRST_CURSOR,
    });
    await log.append('k', 'g1', [head, delta('Hel')], LONG);
    const follower = await log.claim('k', { ...lead, generation: 'g3' });
    expect(follower).toMatchObject({ role: 'follower', generation: 'g1', events: [head, delta('Hel')] });
    await log.finish('k', 'g1', [delta('lo'), end], { keepMs: LONG, cacheable: true });
    const hit = await log.claim('k', { ...lead, generation: 'g4' });
    expect(hit).toMatchObject({
      role: 'hit',
      generation: 'g1',
      events: [head, delta('Hel'), delta('lo'), end],
    });
    // The cursor of a claim continues where its events end.
    if (hit.role === 'leader') throw new Error('expected a hit');
    expect((await log.read('k', 'g1', hit.cursor)).events).toEqual([]);
    // Another key is another reply.
    expect(await log.claim('other', { ...lead, generation: 'g5' })).toMatchObject({ role: 'leader' });
  });

  it('answers numeric-looking generation ids as strings', async () => {
    make();
    await log.claim('k', { ...lead, generation: '123' });
    expect(await log.claim('k', { ...lead, generation: '456' })).toMatchObject({
      role: 'follower',
      generation: '123',
    });
  });

  it('with follow: false leads beside a live generation, which keeps its own log', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g1' });
    expect(await log.claim('k', { ...lead, follow: false, generation: 'g2' })).toEqual({
      role: 'leader',
      generation: 'g2',
    });
    // The key now points at the newest generation.
    expect(await log.claim('k', { ...lead, generation: 'g3' })).toMatchObject({
      role: 'follower',
      generation: 'g2',
    });
    // The older one is still written and read on its own.
    expect(await log.append('k', 'g1', [head], LONG)).toEqual({ stop: false, readers: 0, called: false });
    await log.append('k', 'g2', [delta('other')], LONG);
    expect((await log.read('k', 'g1', FIRST_CURSOR)).events).toEqual([head]);
    expect((await log.read('k', 'g2', FIRST_CURSOR)).events).toEqual([delta('other')]);
  });

  it('with hit: false never hits, and leads a fresh generation that others then follow', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g1' });
    await log.finish('k', 'g1', [head, end], { keepMs: LONG, cacheable: true });
    expect(await log.claim('k', { ...lead, hit: false, generation: 'g2' })).toEqual({
      role: 'leader',
      generation: 'g2',
    });
    expect(await log.claim('k', { ...lead, hit: false, generation: 'g3' })).toMatchObject({
      role: 'follower',
      generation: 'g2',
    });
  });

  it('reads back exactly the appended events, in order, in batches, with a working cursor', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g' });
    expect(await log.read('k', 'g', FIRST_CURSOR)).toEqual({
      events: [],
      cursor: FIRST_CURSOR,
      writerAlive: true,
    });
    const text = ['héllo ', 'wörld ', '👋 ', '"quoted" ', '{"json":1}', '123', 'null', ''];
    await log.append('k', 'g', [head, ...text.slice(0, 3).map((t, i) => delta(t, i))], LONG);
    await log.append('k', 'g', [], LONG); // only renews
    await log.append(
      'k',
      'g',
      text.slice(3).map((t, i) => delta(t, 3 + i)),
      LONG,
    );
    const first = await log.read('k', 'g', FIRST_CURSOR);
    expect(first.events).toEqual([head, ...text.map((t, i) => delta(t, i))]);
    expect(first.writerAlive).toBe(true);
    expect(await log.read('k', 'g', first.cursor)).toEqual({
      events: [],
      cursor: first.cursor,
      writerAlive: true,
    });
    // '' also means "from the start".
    expect((await log.read('k', 'g', '')).events).toHaveLength(text.length + 1);

    // 250 appends: a read answers at most 200 of them, the next the rest.
    for (let i = 0; i < 250; i++) await log.append('k', 'g', [delta(`t${i}`, i)], LONG);
    const batch1 = await log.read('k', 'g', first.cursor);
    expect(batch1.events).toHaveLength(200);
    const batch2 = await log.read('k', 'g', batch1.cursor);
    expect(batch2.events).toHaveLength(50);
    expect([...batch1.events, ...batch2.events]).toEqual(
      Array.from({ length: 250 }, (_, i) => delta(`t${i}`, i)),
    );
    // A follower's claim brings the first batch too, and its cursor continues from there.
    const claim = await log.claim('k', { ...lead, generation: 'g2' });
    if (claim.role === 'leader') throw new Error('expected a follower');
    expect(claim.events).toHaveLength(text.length + 1 + 198); // the first 200 entries: 2 batches + 198 single ones
    const rest = await readAll(log, 'k', 'g', claim.cursor);
    expect([...claim.events, ...rest.events]).toEqual([...first.events, ...batch1.events, ...batch2.events]);
  });

  it('counts followers as readers, and leave gives them back, never below zero', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g' });
    expect(await log.append('k', 'g', [head], LONG)).toEqual({ stop: false, readers: 0, called: false });
    await log.claim('k', { ...lead, generation: 'f1' });
    await log.claim('k', { ...lead, generation: 'f2' });
    expect(await log.append('k', 'g', [], LONG)).toEqual({ stop: false, readers: 2, called: false });
    await log.leave('k', 'g');
    expect(await log.append('k', 'g', [], LONG)).toEqual({ stop: false, readers: 1, called: false });
    await log.leave('k', 'g');
    await log.leave('k', 'g');
    expect(await log.append('k', 'g', [], LONG)).toEqual({ stop: false, readers: 0, called: false });
  });

  it('a stop is seen by the next append, and by every one after it', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g' });
    await log.stop('k', 'g');
    expect(await log.append('k', 'g', [head], LONG)).toEqual({ stop: true, readers: 0, called: false });
    expect((await log.append('k', 'g', [], LONG)).stop).toBe(true);
    // Stopping a generation that is not there creates nothing.
    await log.stop('k', 'nobody');
    await log.leave('k', 'nobody');
    expect([...(await ttls(prefix)).keys()].some((k) => k.includes('nobody'))).toBe(false);
  });

  it('once the lease lapses: readers learn the writer is gone, its writes are refused, and a new claim leads', async () => {
    make();
    await log.claim('k', { ...lead, leaseMs: 200, generation: 'g1' });
    await eventually(async () => {
      const answer = await log.read('k', 'g1', FIRST_CURSOR);
      return answer.writerAlive ? undefined : answer;
    }, 'the lease to lapse');
    expect(await log.append('k', 'g1', [head], LONG)).toEqual({ stop: true, readers: 0, called: false });
    await log.finish('k', 'g1', [end], { keepMs: LONG, cacheable: true });
    expect((await log.read('k', 'g1', FIRST_CURSOR)).events).toEqual([]); // nothing was recorded
    expect(await log.claim('k', { ...lead, generation: 'g2' })).toEqual({ role: 'leader', generation: 'g2' });
  });

  it('a complete generation stays readable, and counts as alive so a reader a batch behind keeps reading', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g' });
    for (let i = 0; i < 210; i++) await log.append('k', 'g', [delta(`t${i}`)], LONG);
    await log.finish('k', 'g', [end], { keepMs: LONG, cacheable: false });
    const first = await log.read('k', 'g', FIRST_CURSOR);
    expect(first).toMatchObject({ writerAlive: true });
    expect(first.events).toHaveLength(200);
    const second = await log.read('k', 'g', first.cursor);
    expect(second.events.at(-1)).toEqual(end);
    expect(second.events).toHaveLength(11);
    // A write after the finish is refused.
    expect((await log.append('k', 'g', [delta('late')], LONG)).stop).toBe(true);
  });

  it('a generation finished as not cacheable is never a hit: the next claim leads', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g1' });
    await log.finish('k', 'g1', [head, end], { keepMs: LONG, cacheable: false });
    expect(await log.claim('k', { ...lead, generation: 'g2' })).toEqual({ role: 'leader', generation: 'g2' });
  });

  it('a cacheable generation is a hit for keepMs, then gone, keys and all', async () => {
    make();
    await log.claim('k', { ...lead, generation: 'g1' });
    await log.append('k', 'g1', [head], LONG);
    await log.finish('k', 'g1', [end], { keepMs: 300, cacheable: true });
    for (const [key, ttl] of await ttls(prefix)) {
      // Gone already (-2) on a slow machine, else kept at most keepMs.
      if (ttl !== -2) expect({ key, ttl: ttl <= 300 && ttl > 0 }).toEqual({ key, ttl: true });
    }
    const next = await eventually(async () => {
      const claim = await log.claim('k', { ...lead, generation: 'g2' });
      return claim.role === 'leader' ? claim : undefined;
    }, 'the hit to expire');
    expect(next.generation).toBe('g2');
    await eventually(async () => {
      const left = [...(await ttls(prefix)).keys()].filter((k) => k.includes(':g1:'));
      return left.length === 0 ? true : undefined;
    }, 'the keys of g1 to expire');
  });

  it('gives every key it writes a TTL', async () => {
    make();
    await log.claim('live', { ...lead, generation: 'g1' });
    await log.append('live', 'g1', [head, delta('a')], LONG);
    await log.claim('live', { ...lead, generation: 'g2' });
    await log.stop('live', 'g1');
    await log.leave('live', 'g1');
    await log.claim('done', { ...lead, generation: 'g3' });
    await log.finish('done', 'g3', [head, end], { keepMs: LONG, cacheable: true });
    await log.claim('plain', { ...lead, generation: 'g4' });
    await log.finish('plain', 'g4', [head, end], { keepMs: LONG, cacheable: false });
    await log.putChat('chat', { owner: 'o', key: 'live', generation: 'g1' }, LONG);
    const all = await ttls(prefix);
    expect(all.size).toBeGreaterThanOrEqual(8);
    const forever = [...all].filter(([, ttl]) => ttl < 0);
    expect(forever).toEqual([]);
  });

  it('keeps chat records: running while the lease lives, dropped only by the same generation', async () => {
    make();
    expect(await log.getChat('c1')).toBeUndefined();
    await log.claim('k', { ...lead, generation: 'g1' });
    const record = { owner: 'user:42', key: 'k', generation: 'g1' };
    await log.putChat('c1', record, LONG);
    expect(await log.getChat('c1')).toEqual({ ...record, running: true });
    await log.finish('k', 'g1', [head, end], { keepMs: LONG, cacheable: false });
    expect(await log.getChat('c1')).toEqual({ ...record, running: false });
    await log.dropChat('c1', 'g0');
    expect(await log.getChat('c1')).toMatchObject({ generation: 'g1' });
    await log.dropChat('c1', 'g1');
    expect(await log.getChat('c1')).toBeUndefined();

    // Numeric-looking fields come back as the strings they were; a lapsed lease is not running.
    await log.claim('7', { ...lead, leaseMs: 200, generation: '8' });
    await log.putChat('c2', { owner: '123', key: '7', generation: '8' }, LONG);
    const lapsed = await eventually(async () => {
      const chat = await log.getChat('c2');
      return chat?.running === false ? chat : undefined;
    }, 'the lease to lapse');
    expect(lapsed).toEqual({ owner: '123', key: '7', generation: '8', running: false });
  });

  if (name.startsWith('Upstash REST')) {
    it('has no watch: readers poll, and the leader writes to learn who follows', () => {
      expect(make().watch).toBeUndefined();
      expect(log.watchCalls).toBeUndefined();
    });
  } else {
    it('watch wakes a watcher after an append, and unsubscribing stops it', async () => {
      make();
      await log.claim('k', { ...lead, generation: 'g' });
      let woken = 0;
      let other = 0;
      const unwatch = log.watch?.('k', 'g', () => woken++);
      const unwatchOther = log.watch?.('k', 'g', () => other++);
      if (!unwatch || !unwatchOther) throw new Error('expected watch over TCP');
      // The SUBSCRIBE is asynchronous: keep appending until a wake arrives, rather than guessing how long it takes.
      await eventually(async () => {
        await log.append('k', 'g', [delta('x')], LONG);
        return woken > 0 && other > 0 ? true : undefined;
      }, 'a wake');
      unwatch();
      unwatch(); // idempotent: must not take the other watcher's subscription away
      const before = woken;
      const otherBefore = other;
      await log.append('k', 'g', [delta('y')], LONG);
      await eventually(async () => (other > otherBefore ? true : undefined), 'the other watcher');
      expect(woken).toBe(before);
      // The finish wakes too.
      await log.finish('k', 'g', [end], { keepMs: LONG, cacheable: false });
      await eventually(async () => (other > otherBefore + 1 ? true : undefined), 'the finish to wake');
      unwatchOther();
      const channel = `${prefix}:{k}:g:w`;
      await eventually(async () => {
        const [, count] = (await raw.pubsub('NUMSUB', channel)) as [string, number];
        return Number(count) === 0 ? true : undefined;
      }, 'the last watcher to unsubscribe');
    });

    it('watch wakes once as soon as it listens (an append before then reached nobody), at once if already heard', async () => {
      make();
      await log.claim('k', { ...lead, generation: 'g' });
      const channel = `${prefix}:{k}:g:w`;
      const subscribed: number[] = [];
      let woken = 0;
      // Before the watch, so certainly announced to nobody: the watch must be told once it listens. (Made while the
      // SUBSCRIBE was on its way, it reached the watcher now and then, a wake more than the counts below allow, and
      // sometimes only after the second watch was made: a CI run waited for a count it had gone past.)
      await log.append('k', 'g', [delta('x')], LONG);
      const unwatch = log.watch?.('k', 'g', () => {
        woken++;
        void raw.pubsub('NUMSUB', channel).then((answer) => {
          subscribed.push(Number((answer as [string, number])[1]));
        });
      });
      await eventually(async () => (subscribed.length > 0 ? true : undefined), 'the watch to listen');
      expect(subscribed).toEqual([1]); // told when Redis listens, not before, and once
      let other = 0;
      const unwatchOther = log.watch?.('k', 'g', () => other++);
      await eventually(async () => (other > 0 ? true : undefined), 'the second watch, already heard');
      expect(other).toBe(1);
      const before = woken;
      await log.append('k', 'g', [delta('y')], LONG);
      await eventually(async () => (woken === before + 1 && other === 2 ? true : undefined), 'one wake each');
      unwatch?.();
      unwatchOther?.();
    });

    it('a channel left and watched again before Redis answered its SUBSCRIBE: the new watch listens and hears', async () => {
      make();
      const subscribe = client().subscribe;
      if (!subscribe) throw new Error('expected pub/sub over TCP');
      const channel = `${prefix}:again`;
      let stale = 0;
      subscribe(channel, () => stale++, { onListening: () => stale++ })(); // gone before the answer
      let listening = 0;
      let heard = 0;
      const unwatch = subscribe(channel, () => heard++, { onListening: () => listening++ });
      await eventually(async () => (listening === 1 ? true : undefined), 'the new watch to listen');
      await raw.publish(channel, 'x');
      await eventually(async () => (heard === 1 ? true : undefined), 'the message');
      expect(stale).toBe(0);
      unwatch();
      await eventually(async () => {
        const [, count] = (await raw.pubsub('NUMSUB', channel)) as [string, number];
        return Number(count) === 0 ? true : undefined;
      }, 'the channel to be let go');
    });

    it('calls the leader when a follower claims, a stop is asked or a reader asks: never on a plain read', async () => {
      make();
      // Calls come through one pattern subscription per process, subscribed at the first watch. It is asynchronous:
      // once a probe published on another generation's channel is heard, every call made after it is heard, in the
      // order made. No channel of its own is subscribed for any leader.
      const heard = async (key: string, generation: string) => {
        const calls = { count: 0 };
        const unwatch = log.watchCalls?.(key, generation, () => calls.count++);
        if (!unwatch) throw new Error('expected calls over TCP');
        const probe = { count: 0 };
        const unprobe = log.watchCalls?.('probe', generation, () => probe.count++);
        await eventually(async () => {
          await raw.publish(`${prefix}:{probe}:${generation}:c`, '1');
          return probe.count > 0 ? true : undefined;
        }, 'the calls pattern to be subscribed');
        unprobe?.();
        const [, count] = (await raw.pubsub('NUMSUB', `${prefix}:{${key}}:${generation}:c`)) as [
          string,
          number,
        ];
        expect(Number(count)).toBe(0);
        return { calls, unwatch };
      };
      await log.claim('k', { ...lead, generation: 'g' });
      const leader = await heard('k', 'g');
      const called = async (what: string, act: () => Promise<unknown>) => {
        const before = leader.calls.count;
        await act();
        await eventually(async () => (leader.calls.count === before + 1 ? true : undefined), what);
      };
      await called('a follower', () => log.claim('k', { ...lead, generation: 'g2' }));
      await called('a read that asks', () => log.read('k', 'g', FIRST_CURSOR, true));
      await called('a stop', () => log.stop('k', 'g'));
      // A plain read, and a claim that leads beside it, call nobody: once a later call (to another leader) is heard,
      // none of theirs can still be on its way.
      await log.claim('m', { ...lead, generation: 'gm' });
      const marker = await heard('m', 'gm');
      const before = leader.calls.count;
      await log.read('k', 'g', FIRST_CURSOR);
      await log.claim('k', { ...lead, follow: false, generation: 'g3' });
      await log.read('m', 'gm', FIRST_CURSOR, true);
      await eventually(async () => (marker.calls.count === 1 ? true : undefined), 'the marker');
      expect(leader.calls.count).toBe(before);
      leader.unwatch();
      marker.unwatch();
    });

    it('keeps a reader’s call for the leader’s next write, in case nobody heard it', async () => {
      make();
      await log.claim('k', { ...lead, generation: 'g' });
      expect(await log.append('k', 'g', [], LONG)).toEqual({ stop: false, readers: 0, called: false });
      await log.read('k', 'g', FIRST_CURSOR); // a plain read says nothing
      expect((await log.append('k', 'g', [], LONG)).called).toBe(false);
      await log.read('k', 'g', FIRST_CURSOR, true); // nobody subscribed: the PUBLISH is lost
      expect(await log.append('k', 'g', [], LONG)).toEqual({ stop: false, readers: 0, called: true });
    });
  }
});

describe('the Redis reply log when Redis is down', () => {
  it('rejects, so the caller can serve the request on its own', async () => {
    const down = tcpRedis('redis://127.0.0.1:1', 300);
    try {
      const log = createRedisLog(down.redis, { prefix: uniquePrefix('down') });
      await expect(
        log.claim('k', { generation: 'g', leaseMs: 1_000, follow: true, hit: true }),
      ).rejects.toThrow();
      await expect(log.read('k', 'g', FIRST_CURSOR)).rejects.toThrow();
    } finally {
      await down.close();
    }
  });
});
