import type { RepliesConfig } from '../config/replies';
import type { TrackedAbort } from '../shutdown';
import type { ServedReply } from '../upstream/failover';
import { LEADER_LOST, type ReplyEvent } from './events';
import {
  type CacheStatus,
  type Claimed,
  type Entry,
  forget,
  type Joined,
  join,
  type Registry,
  type RepliesDeps,
  type ServeOptions,
} from './joining';
import { LiveReply } from './live-reply';
import { type Mirror, type MirrorOptions, mirrorTo } from './mirror';
import { type Produce, pump } from './pump';
import type { SharedLog } from './shared-log';

/** How long a finished, uncacheable reply stays in the shared log, for readers elsewhere still catching up. */
const GRACE_MS = 30_000;

/** What a leader was claimed with. */
export interface LeaderClaim {
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
export class Leader implements Claimed {
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
    this.live = new LiveReply({ onIdle: () => this.idle(), onEvent: () => this.recorded() });
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
      return Object.assign({}, this.joined, detail && { detail });
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
    // Not a spread: see lib/stream/respond.ts (once per request).
    return Object.assign({}, this.joined, { produced, messageId: options.messageId }, detail && { detail });
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

  private recorded(): void {
    this.mirror?.add(this.live.bytes);
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
    events: entry.live.events,
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
  const { inFlight, chats } = registry;
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
    const last = live.events.last;
    if (last && p.cacheable(last)) keepInMemory(registry, key, live, config.cacheTtlMs, p.mirror);
    return reply;
  });
}

/**
 * A cacheable reply that just ended, for this instance's hits. With a shared log, only while its end is on its way
 * there (an identical request in that moment is a hit, not a follower or a second upstream call): then hits come from
 * the log, which a regenerate on another instance may have replaced. Without one (or if it failed), for its TTL, in
 * the memory cache.
 */
function keepInMemory(
  { memory, landing }: Pick<Registry, 'memory' | 'landing'>,
  key: string,
  live: LiveReply,
  ttlMs: number,
  mirror?: Mirror,
): void {
  if (!mirror) {
    memory.set(key, live, ttlMs);
    return;
  }
  landing.set(key, live);
  void mirror.ended.then((landed) => {
    if (landing.get(key) === live) landing.delete(key);
    if (!landed && !landing.has(key)) memory.set(key, live, ttlMs); // a newer reply of the key is landing: it wins
  });
}

/** Only a complete reply from the model itself, within the size cap: never an error, a cut or stopped stream, the
 * operator's fallback message, or a reply the provider's content filter ended. */
function isCacheable(live: LiveReply, last: ReplyEvent, maxBytes: number): boolean {
  const head = live.events.length > 0 ? live.events.at(0) : undefined;
  if (last.type !== 'end' || head?.type !== 'head') return false;
  return (
    head.head.served.fallback !== 'message' &&
    last.finishReason !== 'content_filter' &&
    live.bytes <= maxBytes
  );
}
