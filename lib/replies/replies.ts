import type { RepliesConfig } from '../config/replies';
import type { ToolDeclaration } from '../config/tools';
import type { Internal } from '../internal';
import { redact } from '../redact';
import type { ShutdownHooks, TrackedAbort } from '../shutdown';
import type { ChatRequest } from '../types';
import type { ServedReply } from '../upstream/failover';
import { LEADER_LOST, type ReplyEvent } from './events';
import { LiveReply } from './live-reply';
import { MemoryCache } from './memory-cache';
import { type Mirror, type MirrorOptions, mirrorTo } from './mirror';
import { type Produce, pump } from './pump';
import { type Replayed, replayReply } from './replay';
import { replyKey, type Sha256Hex } from './reply-key';
import { type Claim, FIRST_CURSOR, type SharedLog } from './shared-log';
import { tailSharedReply } from './tail';

export type ReplyRole = 'leader' | 'follower' | 'hit';
export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

export interface ServeOptions {
  readonly callerId: string;
  /** The message id the leader frames its reply under (a resumed stream replays it). */
  readonly messageId: string;
  /** The client's: its reader leaves when it aborts. */
  readonly signal: AbortSignal;
  /** `no-cache` (or a regenerate): never a hit, but the reply may be stored; `no-store`: neither. */
  readonly cacheControl: 'use' | 'no-cache' | 'no-store';
  /** False for a trimmed conversation: its reply is never cached. */
  readonly storable: boolean;
  /** useChat's chat id: with `RESUME=on`, the reply can be resumed under it by the same caller. */
  readonly chatId: string | undefined;
}

/**
 * A request's place in the log, found before it is admitted (the claim and the admission go to Redis together): it
 * reads the reply, and a leader produces it, only once it is admitted.
 */
export interface Claimed {
  /** Reads the reply; a leader produces it with `produce` from now on. Once. */
  start(produce: Produce): Joined;
  /**
   * It will not read the reply after all (it was refused): it leaves, and a leader gives the reply up with an error
   * that makes whoever follows it claim again and take over (`isLeaderLost`). Nothing after `start`.
   */
  abandon(): void;
}

/** A request joined to a reply: as its leader, a follower, or a cache hit. */
export interface Joined {
  readonly role: ReplyRole;
  readonly cache: CacheStatus;
  /** The reply as this request reads it, once its first token is in; rejects with the leader's error. */
  readonly first: Promise<Replayed>;
  /** This request stops reading (its client left). */
  readonly leave: () => void;
  /** The leader's upstream reply once it has ended (for the charge); undefined for followers and hits. */
  readonly produced: Promise<ServedReply | undefined> | undefined;
  /** The shared log failed and this request went on without it: for the log line. */
  readonly detail?: string;
  /** The leader's: the message id it frames its reply under (`ServeOptions.messageId`). */
  readonly messageId?: string;
}

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

export interface RepliesDeps {
  readonly config: RepliesConfig;
  readonly systemPrompt: string;
  readonly tools: readonly ToolDeclaration[];
  /** The reply log other instances share (Redis); absent, replies are shared within this instance only. */
  readonly shared: SharedLog | undefined;
  readonly shutdown: ShutdownHooks;
  /** `TOTAL_TIMEOUT_MS`: a reply nobody stops still ends by then. */
  readonly totalTimeoutMs: number;
  readonly internal: Internal;
  readonly secrets: readonly string[];
  /** How reply keys are hashed; Web Crypto unless the platform has faster. */
  readonly sha256?: Sha256Hex | undefined;
}

/** One request's way into the log: its key and what it may do with it. */
interface Ask {
  readonly key: string;
  /** May it be a cache hit? */
  readonly hit: boolean;
  readonly cache: CacheStatus;
  readonly options: ServeOptions;
}

/** A reply of this instance: being written here, or followed from another instance. */
interface Entry {
  readonly live: LiveReply;
  readonly key: string;
  readonly generation: string;
  /** Only the leader's entry can stop its upstream. */
  readonly stop?: () => void;
  /** A leader that gave its reply up: settles once that end is in the shared log (or failed to get there). */
  settling?: Promise<unknown>;
}

/** How long a finished, uncacheable reply stays in the shared log, for readers elsewhere still catching up. */
const GRACE_MS = 30_000;

/**
 * The reply log in use: one mechanism behind the response cache (a reader after the end), coalescing (a reader who
 * joins while it is written) and resumable streams (a reader who rejoins by chat id). Every reader replays from the
 * first event and then follows live; the upstream runs while anyone reads (or, with `RESUME=on`, until it ends).
 */
export function createReplies(deps: RepliesDeps): Replies {
  const { config, shared, internal } = deps;
  const registry: Registry = {
    inFlight: new Map(),
    chats: new Map(),
    memory: new MemoryCache(config.cacheMaxBytes, internal.now),
    hold: deps.shutdown.hold,
  };
  const { inFlight, memory, hold } = registry;
  const lead: Lead = (claim, log) => new Leader(deps, registry, claim, log);
  const follow = followerFactory(deps, inFlight);
  // Claims in progress on this instance: identical requests arriving together wait for the first one's claim and
  // then join what it found, so one instance asks Redis once and follows with one tail, however many arrive. A hit is
  // shared with them as it is (claiming again, one at a time, would make a popular cached prompt a queue).
  const claiming = new Map<string, Promise<LiveReply | undefined>>();

  const joinKey = async (ask: Ask): Promise<Claimed> => {
    const { key, hit, cache, options } = ask;
    // `no-cache` and `no-store` (and a regenerate) ask for a fresh answer: never one already on its way either.
    const fresh = options.cacheControl !== 'use';
    const local = config.coalesce && !fresh ? inFlight.get(key) : undefined;
    // A reply given up before it started: claimed again once its end is in the shared log, where a claim reads it.
    if (local?.settling) await local.settling;
    else if (local?.live.joinable) return reading(hold, 'follower', cache, local.live, options.signal);
    const cached = hit ? memory.get(key) : undefined;
    if (cached) return reading(hold, 'hit', 'HIT', cached, options.signal, config.cacheReplay === 'paced');
    if (!shared) return lead({ key, generation: internal.newId(), options, cache }, undefined);
    const shares = config.coalesce && !fresh;
    const pending = shares ? claiming.get(key) : undefined;
    const found = pending && (await pending);
    if (found?.joinable)
      return reading(hold, 'hit', 'HIT', found, options.signal, config.cacheReplay === 'paced');
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
  const { key, hit, cache, options } = ask;
  const generation = internal.newId();
  let claim: Claim;
  try {
    const follow = config.coalesce && options.cacheControl === 'use';
    claim = await log.claim(key, { generation, leaseMs: config.leaseMs, follow, hit });
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
  return { key, hit, cache: hit ? 'MISS' : 'BYPASS', options };
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
function followerFactory(deps: RepliesDeps, inFlight: Map<string, Entry>): Follow {
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

interface Registry {
  readonly hold: () => () => void;
  readonly inFlight: Map<string, Entry>;
  readonly chats: Map<string, { owner: string; entry: Entry }>;
  readonly memory: MemoryCache;
}

/** What a leader was claimed with. */
interface LeaderClaim {
  readonly key: string;
  readonly generation: string;
  readonly options: ServeOptions;
  readonly cache: CacheStatus;
  /** The shared log failed and this request went on without it: for the log line. */
  readonly detail?: string | undefined;
}

/**
 * The leader's side: records the reply (here, and in the shared log when there is one) while `produce` streams it
 * from the upstream, once the request is admitted (`start`); until then, identical requests already join it. It
 * stops the upstream when the last reader leaves (never with `RESUME=on`: someone may come back) or on a stop, and at
 * the end keeps a cacheable reply for its TTL. Once it has ended there is nothing to stop, so its last reader leaving
 * asks the shared log nothing (a fast reply's reader often leaves while its end is written).
 */
class Leader implements Claimed {
  private readonly live: LiveReply;
  private readonly entry: Entry;
  private readonly joined: Joined;
  private mirror: Mirror | undefined;
  private abort: TrackedAbort | undefined;
  private started = false;

  constructor(
    private readonly deps: RepliesDeps,
    private readonly registry: Registry,
    private readonly claim: LeaderClaim,
    shared: SharedLog | undefined,
  ) {
    const { key, generation, options, cache } = claim;
    const { config } = deps;
    this.live = new LiveReply({ onIdle: () => this.idle(), onEvent: (event) => this.recorded(event) });
    this.entry = { live: this.live, key, generation, stop: () => this.stop() };
    this.mirror =
      shared &&
      leaderMirror(shared, config, this.entry, {
        cacheable: (last) => this.cacheable(last),
        // A resumed reader may come for it until the grace period is over.
        forgettable: !(config.resume && options.chatId),
        onAnswer: (answer) => (answer.stop || this.nobodyReads(answer.readers)) && this.stop(),
        onError: () => {
          this.mirror = undefined;
        },
      });
    if (config.coalesce) registry.inFlight.set(key, this.entry);
    this.joined = join(registry.hold, 'leader', cache, this.live, options.signal);
  }

  start(produce: Produce): Joined {
    const { options, detail } = this.claim;
    // Everyone here left while it waited for its admission: followers elsewhere (if any) take it over.
    if (this.live.readerCount === 0 && !this.deps.config.resume) {
      this.giveUp();
      return { ...this.joined, ...(detail && { detail }) };
    }
    this.started = true;
    // No parent: the reply is not its first client's (readers come and go); the last one leaving stops it.
    const abort = this.deps.shutdown.linkedAbort(undefined, { ms: this.deps.totalTimeoutMs, kind: 'total' });
    this.abort = abort;
    const { entry, mirror } = this;
    const cacheable = (last: ReplyEvent) => this.cacheable(last);
    const produced = produceAndKeep(this.deps, this.registry, {
      entry,
      options,
      produce,
      abort,
      cacheable,
      mirror,
    });
    return { ...this.joined, produced, messageId: options.messageId, ...(detail && { detail }) };
  }

  abandon(): void {
    if (!this.started) this.giveUp();
  }

  /** Ends the reply before it started: its followers, here and elsewhere (the mirror records it), claim again. */
  private giveUp(): void {
    this.started = true;
    const { inFlight } = this.registry;
    const settling = this.mirror?.ended ?? Promise.resolve();
    this.entry.settling = settling;
    void settling.then(() => forget(inFlight, this.claim.key, this.entry));
    this.live.push(LEADER_LOST);
    this.joined.leave();
  }

  /**
   * Once the reply has ended there is nothing to stop (and an abort still costs a DOMException per request). One told
   * to stop is joined by nobody new: they would get its `reply_stopped`, not a reply.
   */
  private stop(): void {
    if (this.live.ended) return;
    this.live.halt();
    this.abort?.abort();
  }

  private idle(): void {
    const { live, mirror } = this;
    if (live.ended) return;
    if (!mirror) {
      if (this.nobodyReads(0)) this.stop();
      return;
    }
    void mirror.renew().then((answer) => this.nobodyReads(answer?.readers ?? 0) && this.stop());
  }

  private recorded(event: ReplyEvent): void {
    this.mirror?.add(event, this.live.bytes);
    // Too big to record: nobody new may join it (those reading it here still get it all).
    if (this.live.bytes > this.deps.config.maxReplyBytes)
      forget(this.registry.inFlight, this.claim.key, this.entry);
  }

  private nobodyReads(remote: number): boolean {
    return !this.deps.config.resume && this.live.readerCount === 0 && remote === 0;
  }

  private cacheable(last: ReplyEvent): boolean {
    const { config } = this.deps;
    const { options } = this.claim;
    const storable = config.cacheTtlMs > 0 && options.cacheControl !== 'no-store' && options.storable;
    return storable && isCacheable(this.live, last, config.maxReplyBytes);
  }
}

/** The leader's copy of its reply in the shared log: a cacheable end is kept for the TTL, any other for a grace. */
function leaderMirror(
  shared: SharedLog,
  config: RepliesConfig,
  entry: Entry,
  hooks: Pick<MirrorOptions, 'onAnswer' | 'onError' | 'forgettable'> & {
    cacheable: (last: ReplyEvent) => boolean;
  },
): Mirror {
  return mirrorTo(shared, {
    key: entry.key,
    generation: entry.generation,
    leaseMs: config.leaseMs,
    maxBytes: config.maxReplyBytes,
    keep: (last) =>
      hooks.cacheable(last)
        ? { keepMs: config.cacheTtlMs, cacheable: true }
        : { keepMs: GRACE_MS, cacheable: false },
    forgettable: hooks.forgettable,
    onAnswer: hooks.onAnswer,
    onError: hooks.onError,
  });
}

interface Production {
  readonly entry: Entry;
  readonly options: ServeOptions;
  readonly produce: Produce;
  readonly abort: TrackedAbort;
  readonly cacheable: (last: ReplyEvent) => boolean;
  readonly mirror: Mirror | undefined;
}

/** Produces the leader's reply under its chat id (for resume), then keeps it in memory if it may be a hit. */
function produceAndKeep(
  deps: RepliesDeps,
  registry: Registry,
  p: Production,
): Promise<ServedReply | undefined> {
  const { config, shared } = deps;
  const { inFlight, chats, memory } = registry;
  const { entry, options } = p;
  const { key, generation, live } = entry;
  const chatId = config.resume ? options.chatId : undefined;
  if (chatId) {
    // A chat id is not a capability: another caller's running chat keeps it (the shared log checks the same).
    const known = chats.get(chatId);
    if (!known || known.owner === options.callerId || known.entry.live.ended)
      chats.set(chatId, { owner: options.callerId, entry });
    void shared
      ?.putChat(chatId, { owner: options.callerId, key, generation }, deps.totalTimeoutMs + GRACE_MS)
      .catch(() => {});
  }
  return pump(live, p.produce, p.abort, options.messageId).then((reply) => {
    forget(inFlight, key, entry);
    if (chatId && chats.get(chatId)?.entry === entry) chats.delete(chatId);
    if (chatId) void shared?.dropChat(chatId, generation).catch(() => {});
    const last = live.events.at(-1);
    if (last && p.cacheable(last)) keepInMemory(memory, key, live, config.cacheTtlMs, p.mirror);
    return reply;
  });
}

/**
 * A cacheable reply that just ended, for this instance's hits. With a shared log, only while its end is on its way
 * there (an identical request in that moment is a hit, not a follower or a second upstream call): then hits come from
 * the log, which a regenerate on another instance may have replaced. Without one (or if it failed), for its TTL.
 */
function keepInMemory(
  memory: MemoryCache,
  key: string,
  live: LiveReply,
  ttlMs: number,
  mirror?: Mirror,
): void {
  memory.set(key, live, ttlMs);
  void mirror?.ended.then((landed) => landed && memory.drop(key, live));
}

/** Only a complete reply from the model itself, within the size cap: never an error, a cut or stopped stream, the
 * operator's fallback message, or a reply the provider's content filter ended. */
function isCacheable(live: LiveReply, last: ReplyEvent, maxBytes: number): boolean {
  const head = live.events[0];
  if (last.type !== 'end' || head?.type !== 'head') return false;
  return (
    head.head.served.fallback !== 'message' &&
    last.finishReason !== 'content_filter' &&
    live.bytes <= maxBytes
  );
}

/** A follower's or a hit's claim: it reads from the claim on, so giving it up is leaving. */
function reading(...args: Parameters<typeof join>): Claimed {
  const joined = join(...args);
  let started = false;
  return {
    start: () => {
      started = true;
      return joined;
    },
    abandon: () => {
      if (!started) joined.leave();
    },
  };
}

function forget(inFlight: Map<string, Entry>, key: string, entry: Entry): void {
  if (inFlight.get(key) === entry) inFlight.delete(key);
}

/**
 * A new reader of `live`, leaving when its client does. A drain waits for it (`hold`) as it does for a reply
 * streamed straight through: until the reader has left, which is when its reply is charged and logged.
 */
function join(
  hold: () => () => void,
  role: ReplyRole,
  cache: CacheStatus,
  live: LiveReply,
  signal: AbortSignal,
  pace = false,
) {
  const reader = live.reader();
  const release = hold();
  const leave = () => {
    signal.removeEventListener('abort', leave);
    reader.leave();
    release();
  };
  if (signal.aborted) leave();
  else signal.addEventListener('abort', leave, { once: true });
  const first = replayReply(reader, pace);
  // Read only once the request is admitted (or never, if it is refused): until then, a rejection is not unhandled.
  first.catch(() => {});
  return { role, cache, first, leave, produced: undefined };
}
