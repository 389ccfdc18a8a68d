import { InFlightMap } from '../in-flight';
import { redact } from '../redact';
import type { ChatRequest } from '../types';
import type { ReplyEvent } from './events';
import {
  type CacheStatus,
  type Claimed,
  type Entry,
  forget,
  join,
  type Registry,
  type RepliesDeps,
  reading,
  type ServeOptions,
} from './joining';
import { Leader, type LeaderClaim } from './leader';
import type { LiveReply } from './live-reply';
import { MemoryCache } from './memory-cache';
import type { Replayed } from './replay';
import { replyKey } from './reply-key';
import { type Claim, FIRST_CURSOR, type SharedLog } from './shared-log';
import { tailSharedReply } from './tail';

export type { CacheStatus, Claimed, Joined, RepliesDeps, ReplyRole, ServeOptions } from './joining';

export type Resumed =
  | { readonly kind: 'none' }
  | { readonly kind: 'not_found' }
  | { readonly kind: 'reading'; readonly first: Promise<Replayed>; readonly leave: () => void };

export interface Replies {
  claim(request: ChatRequest, options: ServeOptions): Promise<Claimed>;
  /** `GET /api/chat/{chatId}/stream`: the chat's running reply from its start, if it is this caller's. */
  resume(chatId: string, callerId: string, signal: AbortSignal): Promise<Resumed>;
  /** `DELETE /api/chat/{chatId}/stream`: stops the chat's running reply, if it is this caller's. */
  stop(chatId: string, callerId: string): Promise<'stopped' | 'none' | 'not_found'>;
}

/** One request's way into the log: its key and what it may do with it. */
interface Ask {
  readonly key: string;
  /** May it be a cache hit? */
  readonly hit: boolean;
  readonly cache: CacheStatus;
  /**
   * May it share a reply already on its way (follow one, wait on an identical claim)? Not with coalescing off, nor for
   * `no-cache` and `no-store` (and a regenerate), which ask for a fresh answer.
   */
  readonly shares: boolean;
  readonly options: ServeOptions;
}

/**
 * The reply log in use: one mechanism behind the response cache (a reader after the end), coalescing (a reader who
 * joins while it is written) and resumable streams (a reader who rejoins by chat id). Every reader replays from the
 * first event and then follows live; the upstream runs while anyone reads (or, with `RESUME=on`, until it ends).
 */
export function createReplies(deps: RepliesDeps): Replies {
  const { config, shared, internal } = deps;
  const registry: Registry = {
    inFlight: new InFlightMap(),
    chats: new InFlightMap(),
    memory: new MemoryCache(config.cacheMaxBytes, internal.now),
    landing: new InFlightMap(),
    hold: deps.shutdown.hold,
  };
  const { inFlight, memory, landing, hold } = registry;
  const lead: Lead = (claim, log) => new Leader(deps, registry, claim, log);
  const follow = followerFactory(deps, inFlight);
  // Claims in progress on this instance: identical requests arriving together wait for the first one's claim and
  // then join what it found, so one instance asks Redis once and follows with one tail, however many arrive. A hit is
  // shared with them as it is (claiming again, one at a time, would make a popular cached prompt a queue).
  const claiming = new InFlightMap<Promise<LiveReply | undefined>>();

  const joinKey = async (ask: Ask): Promise<Claimed> => {
    const { key, hit, cache, shares, options } = ask;
    const replay = (live: LiveReply) =>
      reading(hold, 'hit', 'HIT', live, options.signal, config.cacheReplay === 'paced');
    const local = shares ? inFlight.get(key) : undefined;
    // A reply given up before it started: claimed again once its end is in the shared log, where a claim reads it.
    if (local?.settling) await local.settling;
    else if (local?.live.joinable) return reading(hold, 'follower', cache, local.live, options.signal);
    const cached = hit ? (landing.get(key) ?? memory.get(key)) : undefined;
    if (cached) return replay(cached);
    if (!shared) return lead({ key, generation: internal.newId(), options, cache }, undefined);
    const pending = shares ? claiming.get(key) : undefined;
    const found = pending && (await pending);
    if (found?.joinable) return replay(found);
    if (pending) return joinKey(ask); // a reply in flight now, joined by its key (or else claimed again)
    const claimed = claimShared(deps, { lead, follow, hold }, shared, ask);
    const mine = claimed.then(
      ({ hit }) => hit,
      () => undefined,
    );
    if (shares) claiming.set(key, mine);
    try {
      return (await claimed).claim;
    } finally {
      if (claiming.get(key) === mine) claiming.delete(key);
    }
  };

  return {
    claim: async (request, options) => joinKey(await askFor(deps, request, options)),

    ...chatControls(registry, shared, follow),
  };
}

/** What one claim found: the request's place, and the hit itself for identical requests waiting on the claim. */
async function claimShared(
  deps: RepliesDeps,
  roles: { lead: Lead; follow: Follow; hold: () => () => void },
  log: SharedLog,
  ask: Ask,
): Promise<{ claim: Claimed; hit?: LiveReply }> {
  const { config, internal } = deps;
  const { key, hit, cache, shares, options } = ask;
  const generation = internal.newId();
  let claim: Claim;
  try {
    claim = await log.claim(key, { generation, leaseMs: config.leaseMs, follow: shares, hit });
  } catch (error) {
    // The shared log is down: answer on our own, as if nobody else were asking.
    const detail = `reply log: ${redact(String(error), deps.secrets)}`;
    return { claim: roles.lead({ key, generation, options, cache, detail }, undefined) };
  }
  if (claim.role === 'leader') return { claim: roles.lead({ key, generation, options, cache }, log) };
  const isHit = claim.role === 'hit';
  const { live } = roles.follow(key, claim, !isHit);
  const pace = isHit && config.cacheReplay === 'paced';
  const reader = reading(roles.hold, claim.role, isHit ? 'HIT' : cache, live, options.signal, pace);
  return { claim: reader, ...(isHit && { hit: live }) };
}

type Lead = (claim: LeaderClaim, log: SharedLog | undefined) => Claimed;

/** The request's key in the log, and what it may do with it. */
async function askFor(deps: RepliesDeps, request: ChatRequest, options: ServeOptions): Promise<Ask> {
  const { config } = deps;
  const hit = config.cacheTtlMs > 0 && options.cacheControl === 'use';
  const scope = config.cacheScope === 'caller' ? `caller:${options.callerId}` : 'global';
  const context = { systemPrompt: deps.systemPrompt, tools: deps.tools, scope };
  const key = await replyKey(request, context, deps.sha256);
  const shares = config.coalesce && options.cacheControl === 'use';
  return { key, hit, cache: hit ? 'MISS' : 'BYPASS', shares, options };
}

type Follow = (
  key: string,
  claim: { generation: string; events: readonly ReplyEvent[]; cursor: string },
  counted: boolean,
) => Entry;

/** Resume and stop by chat id (`RESUME=on`): a chat id is not a capability, so each checks the caller first. */
function chatControls(
  registry: Registry,
  shared: SharedLog | undefined,
  follow: Follow,
): Pick<Replies, 'resume' | 'stop'> {
  const { chats, inFlight, hold } = registry;
  return {
    async resume(chatId, callerId, signal) {
      const local = ours(chats, chatId, callerId, shared);
      if (local) {
        if (local.owner !== callerId) return { kind: 'not_found' };
        if (local.entry.live.ended) return { kind: 'none' };
        return { kind: 'reading', ...join(hold, 'follower', 'BYPASS', local.entry.live, signal) };
      }
      const record = await shared?.getChat(chatId);
      if (!record) return { kind: 'none' };
      if (record.owner !== callerId) return { kind: 'not_found' };
      if (!record.running) return { kind: 'none' };
      const known = inFlight.get(record.key);
      const entry =
        known?.generation === record.generation && known.live.joinable
          ? known
          : follow(record.key, { generation: record.generation, events: [], cursor: FIRST_CURSOR }, false);
      return { kind: 'reading', ...join(hold, 'follower', 'BYPASS', entry.live, signal) };
    },

    async stop(chatId, callerId) {
      const local = ours(chats, chatId, callerId, shared);
      if (local) {
        if (local.owner !== callerId) return 'not_found';
        if (local.entry.live.ended || !local.entry.stop) return 'none';
        local.entry.stop();
        return 'stopped';
      }
      const record = await shared?.getChat(chatId);
      if (!record) return 'none';
      if (record.owner !== callerId) return 'not_found';
      if (!record.running) return 'none';
      await shared?.stop(record.key, record.generation);
      return 'stopped';
    },
  };
}

/**
 * This instance's record of a chat, unless another caller holds it here while the shared log may know better: there,
 * the record a caller posting under someone else's chat id could not overwrite (`putChat`) decides.
 */
function ours(chats: Registry['chats'], chatId: string, callerId: string, shared: SharedLog | undefined) {
  const local = chats.get(chatId);
  return local && (local.owner === callerId || !shared) ? local : undefined;
}

/** Follows a reply written on another instance; one tail per instance is shared by its local followers. */
function followerFactory(deps: RepliesDeps, inFlight: InFlightMap<Entry>): Follow {
  const { config } = deps;
  const shared = deps.shared as SharedLog;
  return (key, claim, counted) => {
    const entry: Entry = {
      key,
      generation: claim.generation,
      live: tailSharedReply(shared, {
        key,
        ...claim,
        pollMs: config.pollMs,
        leaseMs: config.leaseMs,
        counted,
        onDone: () => forget(inFlight, key, entry),
      }),
    };
    if (counted && config.coalesce) inFlight.set(key, entry);
    return entry;
  };
}
