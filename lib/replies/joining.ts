import type { RepliesConfig } from '../config/replies';
import type { ToolDeclaration } from '../config/tools';
import type { InFlightMap } from '../in-flight';
import type { Internal } from '../internal';
import type { ShutdownHooks } from '../shutdown';
import type { ServedReply } from '../upstream/failover';
import type { LiveReply } from './live-reply';
import type { MemoryCache } from './memory-cache';
import type { Produce } from './pump';
import { type Replayed, replayReply } from './replay';
import type { Sha256Hex } from './reply-key';
import type { SharedLog } from './shared-log';

/*
 * How a request joins a reply of this instance's log (lib/replies/replies.ts): what it gets (`Joined`, `Claimed`),
 * the instance's registry of replies, and its reader's way in and out. The leader's side is lib/replies/leader.ts.
 */

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

/** A reply of this instance: being written here, or followed from another instance. */
export interface Entry {
  readonly live: LiveReply;
  readonly key: string;
  readonly generation: string;
  /** Only the leader's entry can stop its upstream. */
  readonly stop?: () => void;
  /** A leader that gave its reply up: settles once that end is in the shared log (or failed to get there). */
  settling?: Promise<unknown>;
}

export interface Registry {
  readonly hold: () => () => void;
  readonly inFlight: InFlightMap<Entry>;
  readonly chats: InFlightMap<{ owner: string; entry: Entry }>;
  readonly memory: MemoryCache;
  /**
   * Cacheable replies whose end is on its way to the shared log: hits until it is there. Apart from `memory`, whose
   * LRU order needs a `Map`: one entry a reply, gone in milliseconds, is what lib/in-flight.ts is for.
   */
  readonly landing: InFlightMap<LiveReply>;
}

/** A follower's or a hit's claim: it reads from the claim on, so giving it up is leaving. */
export function reading(...args: Parameters<typeof join>): Claimed {
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

export function forget(inFlight: InFlightMap<Entry>, key: string, entry: Entry): void {
  if (inFlight.get(key) === entry) inFlight.delete(key);
}

/**
 * A new reader of `live`, leaving when its client does. A drain waits for it (`hold`) as it does for a reply
 * streamed straight through: until the reader has left, which is when its reply is charged and logged.
 */
export function join(
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
