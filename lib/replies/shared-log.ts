import type { ReplyEvent } from './events';

/**
 * How a request joins the reply log for its key:
 * - `leader`: nothing usable was there; this request claimed `generation` and holds its lease: it must produce it.
 * - `follower`: a generation is being written under a live lease: read it.
 * - `hit`: a complete, cacheable generation is there (only when the claim allowed hits): replay it.
 * A follower or a hit comes with the events recorded so far, so a short reply costs one command.
 */
export type Claim =
  | { readonly role: 'leader'; readonly generation: string }
  | {
      readonly role: 'follower' | 'hit';
      readonly generation: string;
      readonly events: readonly ReplyEvent[];
      readonly cursor: string;
    };

export interface ClaimOptions {
  /** The id this request's generation gets if it leads. */
  readonly generation: string;
  readonly leaseMs: number;
  /** May a live generation be followed (`COALESCE=on`)? If not, this request leads, beside it. */
  readonly follow: boolean;
  /** May a complete, cacheable generation be replayed (cache on, and not bypassed)? */
  readonly hit: boolean;
}

/**
 * What the leader learns each time it writes: whether someone asked it to stop, how many remote readers follow, and
 * whether a reader it does not count (a resumed stream) said it is there: what a lost call would have told it.
 */
export interface WriteAnswer {
  readonly stop: boolean;
  readonly readers: number;
  readonly called: boolean;
}

/** The cursor before the first event of a generation: a reader that has read nothing passes this. */
export const FIRST_CURSOR = '0';

/**
 * A claim or a read answers at most this many appends (each one event or more); a reader given that many events
 * asks again at once for the rest instead of waiting for news (a long reply's cache hit would stall between batches).
 */
export const READ_BATCH = 200;

export interface ReadAnswer {
  /** Every event after the cursor given, in order. */
  readonly events: readonly ReplyEvent[];
  readonly cursor: string;
  /** False once the writer's lease has expired: a generation that has not ended by then never will. */
  readonly writerAlive: boolean;
}

/** Who a chat's running reply belongs to, and where it is recorded (`RESUME=on`). */
export interface ChatRecord {
  readonly owner: string;
  readonly key: string;
  readonly generation: string;
}

/**
 * The reply log shared by every instance (Redis). Each generation of a key is its own append-only log, so a new
 * leader never disturbs the readers of an older one; the key points at its latest generation. Every method may
 * reject when the store is down: the caller falls back to serving the request on its own.
 */
export interface SharedLog {
  /** Atomically decides leader, follower or hit (see `Claim`). A follower is counted among the remote readers. */
  claim(key: string, options: ClaimOptions): Promise<Claim>;
  /** The leader appends events (one command for the batch) and renews its lease. An empty batch only renews. */
  append(
    key: string,
    generation: string,
    events: readonly ReplyEvent[],
    leaseMs: number,
  ): Promise<WriteAnswer>;
  /**
   * The leader's last write: the final events, then the generation is kept `keepMs` (the cache TTL when `cacheable`,
   * else a short grace for readers still catching up). A cacheable generation becomes the key's hit. `unread`: a
   * reply nobody may read later (no cache, no resume) ends without its events, and what was written of it goes, unless
   * a reader follows it from elsewhere: then nothing changes and the answer is `read` (write the events after all).
   */
  finish(
    key: string,
    generation: string,
    events: readonly ReplyEvent[],
    options: { keepMs: number; cacheable: boolean; unread?: boolean },
  ): Promise<'ended' | 'read'>;
  /**
   * A reader's poll: the events after `cursor`, at most a batch. `callLeader`: a reader the leader does not count
   * (a resumed stream) says it is there, as a follower's claim and a stop do, so the leader writes at once.
   */
  read(key: string, generation: string, cursor: string, callLeader?: boolean): Promise<ReadAnswer>;
  /** A remote reader left: one fewer for the leader to keep going for. */
  leave(key: string, generation: string): Promise<void>;
  /**
   * Asks the leader to stop (`DELETE /api/chat/{id}/stream`): at once where it hears calls (`watchCalls`), else at its
   * next write.
   */
  stop(key: string, generation: string): Promise<void>;
  /**
   * Calls `wake` soon after each append to this generation (pub/sub over TCP), so readers need not poll fast, and
   * once as soon as it listens: an append made before then (after the reader's claim) was announced to nobody.
   * Absent (Upstash REST: no subscriptions), readers poll every `pollMs`.
   */
  watch?(key: string, generation: string, wake: () => void): () => void;
  /**
   * The leader's side of the same: calls `onCall` when a follower claims, a stop is asked or a resumed reader reads
   * (pub/sub over TCP). With it, a reply nobody follows is written only at its lease renewals; absent (Upstash REST),
   * the leader writes a tenth of a second at a time to learn who follows from the answers.
   */
  watchCalls?(key: string, generation: string, onCall: () => void): () => void;
  /**
   * The running reply of a chat, for resume; kept `ttlMs` unless dropped first. Ignored while another caller's record
   * of that chat id is kept: a chat id is not a capability.
   */
  putChat(chatId: string, record: ChatRecord, ttlMs: number): Promise<void>;
  getChat(chatId: string): Promise<(ChatRecord & { readonly running: boolean }) | undefined>;
  dropChat(chatId: string, generation: string): Promise<void>;
}
