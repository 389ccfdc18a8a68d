import type { Redis } from '@upstash/redis';
import type { Subscribe } from '../redis/connect';
import type { ReplyEvent } from './events';
import {
  type ChatRecord,
  type Claim,
  type ClaimOptions,
  FIRST_CURSOR,
  READ_BATCH,
  type SharedLog,
} from './shared-log';

export type { Subscribe };

export interface RedisLogOptions {
  /** Every key starts with it; default `acp:reply`. Tests give each run its own. */
  readonly prefix?: string;
  /** Present over TCP: appends wake the readers of a generation at once, so they need not poll fast. */
  readonly subscribe?: Subscribe;
  /**
   * How long a generation that is still being written outlives its last write (default 5 minutes, and at least two
   * leases): a process that dies mid-reply leaves nothing behind for longer than this.
   */
  readonly liveMs?: number;
}

/** The cursor before the first event: `read` from it replays a generation from its start (`''` means the same). */
export { FIRST_CURSOR };

/** Stream entries (append batches) answered per claim or read; a reader asks again for the rest. */
const BATCH = String(READ_BATCH);
const DEFAULT_PREFIX = 'acp:reply';
const DEFAULT_LIVE_MS = 5 * 60_000;

/*
 * Key layout, all of one reply under one hash tag so every script touches a single cluster slot:
 *   P:{key}            the pointer: the key's latest generation id (a hit while it points at a complete, cacheable one)
 *   P:{key}:G:s        generation G's events: a stream, one entry per append, field `e` = the batch as a JSON array
 *   P:{key}:G:m        G's state: a hash of readers, stop, done, cache, and prev (the hit it was claimed over)
 *   P:{key}:G:l        G's lease: exists while its leader renews it
 *   P:{key}:G:w        the pub/sub channel woken by each append and by the finish (only with `subscribe`)
 *   P:{key}:G:c        the leader's pub/sub channel: a follower's claim, a stop, a resumed reader's first read (heard
 *                      through the pattern P:{*}:*:c, one per process)
 *   P:chat:{chatId}    a chat's running reply, for resume: a hash of gen and rec (the record as JSON)
 * The claim script finds the current generation through the pointer, so it builds that generation's key names itself
 * (they share the pointer's hash tag, hence its slot), and so does FINISH for the hit it gives the pointer back to;
 * every other script gets all its keys declared.
 * A generation id is answered with a leading `@`: a client that decodes every string answer that parses as JSON
 * would turn an id such as `123` into a number. The proxy gives the log a client that does not (`RedisConnection.raw`);
 * the log decodes its own batches, and reads the same from either.
 */

/**
 * Leader, follower or hit, atomically. A hit needs events: a complete generation whose stream expired is not one. A
 * leader that may not hit (`no-cache`, `no-store`) keeps the hit it passes over as `prev`, for FINISH to put back.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
local prev = nil
if cur then
  local at = KEYS[1] .. ':' .. cur
  local state = redis.call('HMGET', at .. ':m', 'done', 'cache')
  local role = nil
  if state[1] == '1' and state[2] == '1' then prev = cur end
  if state[1] == '1' then
    if state[2] == '1' and ARGV[5] == '1' then role = 'hit' end
  elseif ARGV[4] == '1' and redis.call('EXISTS', at .. ':l') == 1 then
    role = 'follower'
  end
  if role then
    local entries = redis.call('XRANGE', at .. ':s', '-', '+', 'COUNT', ARGV[6])
    if role == 'follower' then
      redis.call('HINCRBY', at .. ':m', 'readers', 1)
      if ARGV[7] == '1' then redis.call('PUBLISH', at .. ':c', '1') end
    end
    if role == 'follower' or #entries > 0 then return {role, '@' .. cur, entries} end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], 'readers', 0)
if prev then redis.call('HSET', KEYS[2], 'prev', prev) end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return {'leader'}`;

/**
 * Only the lease holder writes: once the lease lapsed, readers were told the writer is gone, so a late write would
 * leave a gap nobody can see. The pointer is renewed only while it still points here (a newer leader owns it else).
 */
const APPEND = `
local readers = tonumber(redis.call('HGET', KEYS[3], 'readers') or '0')
if redis.call('EXISTS', KEYS[4]) == 0 then return {1, readers} end
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
  if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], '1') end
end
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
local state = redis.call('HMGET', KEYS[3], 'stop', 'called')
local stop = 0
if state[1] == '1' then stop = 1 end
local called = 0
if state[2] == '1' then called = 1 end
return {stop, readers, called}`;

/**
 * Without the lease nothing is recorded: a generation whose lease lapsed never ends (readers gave up on it), and it
 * must never become a hit with a hole in it. A cacheable one takes the pointer even from a newer live generation:
 * a complete reply is the better answer for the next identical request. One that is not gives the pointer back to
 * the hit it was claimed over (`prev`), for what that hit has left to live: a `no-store` request, or a failed
 * `no-cache` one, never evicts the cached reply. An end for a reply nobody may read later (ARGV[6], `unread`) records
 * no events and drops those written, unless a remote reader follows it (counted by its claim; a resumed reader's
 * call is checked too, over TCP, though a resumable reply never ends unread): then it changes nothing and answers 2,
 * and the leader writes the events after all. Keeping every reply for
 * the grace period would cost Redis a copy of each for 30 s, read by nobody.
 */
const FINISH = `
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
if ARGV[6] == '1' then
  local state = redis.call('HMGET', KEYS[3], 'readers', 'called')
  if tonumber(state[1] or '0') > 0 or state[2] == '1' then return 2 end
  redis.call('DEL', KEYS[2])
elseif ARGV[2] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[3], 'done', '1', 'cache', ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
elseif redis.call('GET', KEYS[1]) == ARGV[1] then
  local prev = redis.call('HGET', KEYS[3], 'prev')
  local left = -2
  if prev then left = redis.call('PTTL', KEYS[1] .. ':' .. prev .. ':s') end
  if left > 0 then redis.call('SET', KEYS[1], prev, 'PX', left) else redis.call('DEL', KEYS[1]) end
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], '1') end
return 1`;

/** A complete generation counts as alive: its end is in the log, and a reader a batch behind must keep reading. */
const READ = `
local start = '-'
if ARGV[1] ~= '' and ARGV[1] ~= '0' then start = '(' .. ARGV[1] end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[2])
local alive = 0
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('HGET', KEYS[2], 'done') == '1' then alive = 1 end
if ARGV[3] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'called', '1') end
  redis.call('PUBLISH', ARGV[3], '1')
end
return {alive, entries}`;

/** The EXISTS guards keep a late leave or stop from recreating an expired hash without a TTL. */
const LEAVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'readers', -1)
if n < 0 then
  redis.call('HSET', KEYS[1], 'readers', 0)
  n = 0
end
return n`;

const STOP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'stop', '1')
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
return 1`;

/** A chat id is not a capability: another caller's running chat keeps its record (theirs lapses with its reply). */
const PUT_CHAT = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'rec', ARGV[2], 'owner', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/** A newer reply of the same chat may have replaced the record: only the generation that put it may drop it. */
const DROP_CHAT = `
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const RUNNING = `
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('HGET', KEYS[1], 'done') ~= '1' then return 1 end
return 0`;

type Scripts = ReturnType<typeof loadScripts>;

function loadScripts(redis: Redis) {
  const script = (source: string) => redis.createScript<unknown>(source);
  return {
    claim: script(CLAIM),
    append: script(APPEND),
    finish: script(FINISH),
    read: script(READ),
    leave: script(LEAVE),
    stop: script(STOP),
    putChat: script(PUT_CHAT),
    dropChat: script(DROP_CHAT),
    running: script(RUNNING),
  };
}

/** The names of one reply's keys; the scripts build the same `base:generation:suffix` names. */
class Layout {
  /**
   * A glob every generation's calls channel matches, and no other key or channel of the log. Built once: every leader
   * asks for it, and a regex replace with `$&` took ~19 µs of CPU a request at 1 client (a CPU profile, Node 20).
   */
  readonly allCalls: string;

  constructor(private readonly prefix: string) {
    this.allCalls = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:{*}:*:c`;
  }

  base(key: string): string {
    return `${this.prefix}:{${key}}`;
  }

  generation(key: string, generation: string) {
    const at = `${this.base(key)}:${generation}`;
    return { stream: `${at}:s`, meta: `${at}:m`, lease: `${at}:l`, channel: `${at}:w`, calls: `${at}:c` };
  }

  chat(chatId: string): string {
    return `${this.prefix}:chat:{${chatId}}`;
  }
}

/**
 * The shared reply log on Redis (TCP or Upstash REST): every operation is one script, so one round trip, except
 * `getChat` (two: the chat record and its reply live in different slots). See the key layout above.
 */
export function createRedisLog(redis: Redis, options: RedisLogOptions = {}): SharedLog {
  const layout = new Layout(options.prefix ?? DEFAULT_PREFIX);
  const scripts = loadScripts(redis);
  const liveMs = (leaseMs: number) => ms(Math.max(options.liveMs ?? DEFAULT_LIVE_MS, 2 * leaseMs));
  const { subscribe } = options;
  const calls = (key: string, generation: string) =>
    subscribe ? layout.generation(key, generation).calls : '';
  // Publishing costs a command inside the script; without subscribers (Upstash REST) nobody would hear it.
  const writing = (key: string, generation: string) => writeKeys(layout, key, generation, !!subscribe);
  return {
    claim: (key, claim) =>
      claimReply(scripts, layout, key, claim, { liveMs: liveMs(claim.leaseMs), callLeader: !!subscribe }),
    async append(key, generation, events, leaseMs) {
      const { keys, channel } = writing(key, generation);
      const args = [generation, batch(events), ms(leaseMs), liveMs(leaseMs), channel];
      const [stop, readers, called] = list(await scripts.append.exec(keys, args));
      return { stop: Number(stop) === 1, readers: Number(readers), called: Number(called) === 1 };
    },
    async finish(key, generation, events, { keepMs, cacheable, unread = false }) {
      const { keys, channel } = writing(key, generation);
      const recorded = unread ? '' : batch(events);
      const args = [generation, recorded, ms(keepMs), cacheable ? '1' : '0', channel];
      const ended = await scripts.finish.exec(keys, [...args, unread ? '1' : '0']);
      return Number(ended) === 2 ? 'read' : 'ended';
    },
    async read(key, generation, cursor, callLeader = false) {
      const { stream, meta, lease } = layout.generation(key, generation);
      const args = [cursor, BATCH, callLeader ? calls(key, generation) : ''];
      const [alive, entries] = list(await scripts.read.exec([stream, meta, lease], args));
      return { ...decodeEntries(entries, cursor), writerAlive: Number(alive) === 1 };
    },
    async leave(key, generation) {
      await scripts.leave.exec([layout.generation(key, generation).meta], []);
    },
    async stop(key, generation) {
      await scripts.stop.exec([layout.generation(key, generation).meta], [calls(key, generation)]);
    },
    ...(subscribe && {
      watch: (key: string, generation: string, wake: () => void) =>
        subscribe(layout.generation(key, generation).channel, wake, { onListening: wake }),
      // Every leader listens for calls, so they come through one pattern per process: no SUBSCRIBE per reply.
      watchCalls: (key: string, generation: string, onCall: () => void) =>
        subscribe(layout.generation(key, generation).calls, onCall, { pattern: layout.allCalls }),
    }),
    ...chatRecords(redis, scripts, layout),
  };
}

async function claimReply(
  scripts: Scripts,
  layout: Layout,
  key: string,
  options: ClaimOptions,
  { liveMs, callLeader }: { liveMs: string; callLeader: boolean },
): Promise<Claim> {
  const { meta, lease } = layout.generation(key, options.generation);
  const args = [
    options.generation,
    ms(options.leaseMs),
    liveMs,
    flag(options.follow),
    flag(options.hit),
    BATCH,
  ];
  const [role, generation, entries] = list(
    await scripts.claim.exec([layout.base(key), meta, lease], [...args, flag(callLeader)]),
  );
  if (role !== 'follower' && role !== 'hit') return { role: 'leader', generation: options.generation };
  return { role, generation: String(generation).slice(1), ...decodeEntries(entries, FIRST_CURSOR) };
}

function chatRecords(redis: Redis, scripts: Scripts, layout: Layout) {
  return {
    async putChat(chatId: string, record: ChatRecord, ttlMs: number): Promise<void> {
      const { owner, key, generation } = record;
      const json = JSON.stringify({ owner, key, generation });
      await scripts.putChat.exec([layout.chat(chatId)], [generation, json, ms(ttlMs), owner]);
    },
    async getChat(chatId: string): Promise<(ChatRecord & { readonly running: boolean }) | undefined> {
      const stored = await redis.hget<unknown>(layout.chat(chatId), 'rec');
      if (stored === null || stored === undefined) return undefined;
      // The client has usually decoded the JSON already; a string means it did not.
      const parsed = (typeof stored === 'string' ? JSON.parse(stored) : stored) as Record<string, unknown>;
      const record = {
        owner: String(parsed.owner),
        key: String(parsed.key),
        generation: String(parsed.generation),
      };
      const { meta, lease } = layout.generation(record.key, record.generation);
      const running = Number(await scripts.running.exec([meta, lease], [])) === 1;
      return { ...record, running };
    },
    async dropChat(chatId: string, generation: string): Promise<void> {
      await scripts.dropChat.exec([layout.chat(chatId)], [generation]);
    },
  };
}

/** A writing script's keys, and the channel it wakes the readers on ('' without subscribers): named once a call. */
function writeKeys(layout: Layout, key: string, generation: string, subscribed: boolean) {
  const { stream, meta, lease, channel } = layout.generation(key, generation);
  return { keys: [layout.base(key), stream, meta, lease], channel: subscribed ? channel : '' };
}

/** Stream entries `[id, ['e', batch]]` → the events in order, and the id of the last entry as the next cursor. */
function decodeEntries(entries: unknown, cursor: string): { events: ReplyEvent[]; cursor: string } {
  const events: ReplyEvent[] = [];
  let last = cursor;
  for (const entry of list(entries)) {
    const [id, fields] = list(entry);
    const payload = list(fields)[1];
    // Decoded already by the client (a JSON array always parses), or not: the same events either way.
    const decoded: unknown = typeof payload === 'string' ? JSON.parse(payload) : payload;
    events.push(...(list(decoded) as ReplyEvent[]));
    last = String(id);
  }
  return { events, cursor: last };
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function batch(events: readonly ReplyEvent[]): string {
  return events.length ? JSON.stringify(events) : '';
}

function flag(value: boolean): string {
  return value ? '1' : '0';
}

/** Redis refuses a zero or fractional expiry. */
function ms(value: number): string {
  return String(Math.max(1, Math.ceil(value)));
}
