import type { EventList } from './event-list';
import { failure, isFinal, type ReplyEvent } from './events';
import type { SharedLog, WriteAnswer } from './shared-log';

export interface MirrorOptions {
  /**
   * The reply's events as it records them (`LiveReply.events`): the mirror builds those it writes from there when it
   * writes them, and holds no copy meanwhile (the end of a reply nobody followed or may resume writes none).
   */
  readonly events: EventList;
  readonly key: string;
  readonly generation: string;
  readonly leaseMs: number;
  /** Past this many bytes the reply stops being recorded: readers elsewhere get a clean error. */
  readonly maxBytes: number;
  /** At the end: keep it as the key's cache hit for `keepMs`, or only `keepMs` for readers catching up. */
  readonly keep: (last: ReplyEvent) => { keepMs: number; cacheable: boolean };
  /**
   * Nobody may come for it once it has ended unless it is cacheable (no resume): if no reader followed it from
   * elsewhere, its end records nothing (`SharedLog.finish`'s `unread`).
   */
  readonly forgettable: boolean;
  /**
   * What each write learnt: a stop (`DELETE .../stream`, or the lease was lost) and how many readers follow from
   * other instances.
   */
  readonly onAnswer: (answer: WriteAnswer) => void;
  /** The shared log failed: the reply goes on here, unrecorded elsewhere. */
  readonly onError: (error: unknown) => void;
}

export interface Mirror {
  /** The reply has recorded its next event in `events`, and holds `bytesSoFar` in all. */
  add(bytesSoFar: number): void;
  /** Renews the lease now and tells how many readers follow from other instances. */
  renew(): Promise<WriteAnswer | undefined>;
  /** Settles once the mirror is done: true when the reply's end is in the shared log, false when it failed first. */
  readonly ended: Promise<boolean>;
}

/**
 * How long events wait to be written together: readers elsewhere see them at most this much later. While no reader
 * follows from another instance, a write serves only those yet to come (and the cache), so writes are rarer. Where
 * the log can call the leader (`watchCalls`, TCP), an unfollowed reply is written only with its lease renewals, and
 * at once when a follower, a stop or a resumed reader calls: a 1-second paced request takes 6 script calls (the
 * limiter's three, then the claim, the opening and the end) instead of 16 (under heavy load writes pile up behind each
 * other anyway, so the saving is in Redis commands more than in CPU).
 * Otherwise (Upstash REST) the leader learns who follows only from its writes' answers, so it writes every tenth of a
 * second (not per token: Upstash bills per command).
 */
const WRITE_BATCH_MS = 10;
const UNFOLLOWED_BATCH_MS = 100;
/** The opening's wait: until what has already arrived is recorded (see `batchDelay`). */
const THIS_BURST = -1;

/**
 * Runs `fn` once the event loop has run what is already queued (the tokens of a read already made): `setImmediate`
 * where there is one (Node), else a zero timeout (edge isolates).
 */
const afterBurst: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => setImmediate(fn) : (fn) => setTimeout(fn, 0);

const TOO_LARGE = failure(
  502,
  'reply_too_large',
  'This reply is too long to follow from here. Please send your message again.',
);

/** Events `[from, to)` of the reply, then the cut if there was one; `last` is the last of them. */
interface Batch {
  readonly from: number;
  readonly to: number;
  readonly cut: ReplyEvent | undefined;
  readonly last: ReplyEvent;
}

/**
 * Copies a leader's reply to the shared log for readers on other instances. Writes are batched: events wait a moment
 * for more (see `batchDelay`), and while a write is in flight they pile up for the next, so a fast stream costs a few
 * commands and a slow one at most a command per token. A timer renews the lease between writes.
 */
export function mirrorTo(log: SharedLog, options: MirrorOptions): Mirror {
  return new LogMirror(log, options);
}

class LogMirror implements Mirror {
  /** The first event of `events` not yet written, and the end of those to write (the rest are past the size cap). */
  private next = 0;
  private end = 0;
  /** Past the size cap: written after the events before it, in place of the rest. */
  private cut: ReplyEvent | undefined;
  private writing: Promise<void> | undefined;
  private scheduled: ReturnType<typeof setTimeout> | undefined;
  private burst = false;
  private closed = false;
  private broken = false;
  private followed = false;
  /** Someone called from elsewhere (or said so in a write's answer): written promptly from then on. */
  private called = false;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly unwatch: (() => void) | undefined;
  private settle: (landed: boolean) => void = () => {};
  readonly ended = new Promise<boolean>((resolve) => {
    this.settle = resolve;
  });

  constructor(
    private readonly log: SharedLog,
    private readonly options: MirrorOptions,
  ) {
    this.timer = setInterval(() => this.writeOrRenew(), Math.max(50, Math.floor(options.leaseMs / 3)));
    this.unwatch = log.watchCalls?.(options.key, options.generation, () => {
      this.called = this.followed = true;
      this.writeOrRenew();
    });
  }

  add(bytesSoFar: number): void {
    if (this.closed || this.broken) return;
    const { events, maxBytes } = this.options;
    // Over the cap: stop recording, and end the log with an error for the readers elsewhere.
    if (bytesSoFar > maxBytes && !isFinal(events.last as ReplyEvent)) {
      this.cut = TOO_LARGE;
      this.closed = true;
    } else this.end = events.length;
    this.schedule();
  }

  private get pending(): number {
    return this.end - this.next + (this.cut ? 1 : 0);
  }

  /** The last event to write: the reply's last, unless the cap cut it short. */
  private get last(): ReplyEvent | undefined {
    return this.cut ?? (this.end > 0 ? this.options.events.last : undefined);
  }

  /** Renews the lease now; the answer says whether to stop and who follows. */
  renew = async (): Promise<WriteAnswer | undefined> => {
    if (this.closed || this.broken) return undefined;
    const { key, generation, leaseMs } = this.options;
    return this.log.append(key, generation, [], leaseMs).then(
      (answer) => this.answered(answer),
      (error: unknown) => {
        this.fail(error);
        return undefined;
      },
    );
  };

  /** What is pending goes now, or else a renewal. A data write renews the lease too. */
  private writeOrRenew(): void {
    if (this.pending) this.flush();
    else void this.renew();
  }

  /** Writes what is pending now, after a moment, or with the next renewal or call (see `batchDelay`). */
  private schedule(): void {
    if (this.writing || this.pending === 0) return;
    // The reply's first event, with more after it: the opening (the head and the tokens that came with it).
    const opening = this.next === 0 && this.pending > 1;
    const wait = batchDelay(this.last, opening, this.followed, this.unwatch !== undefined);
    if (wait === 0) this.flush();
    else if (wait === THIS_BURST) this.flushAfterBurst();
    else if (wait !== undefined) this.scheduled ??= setTimeout(() => this.flush(), wait);
  }

  private flushAfterBurst(): void {
    if (this.burst) return;
    this.burst = true;
    afterBurst(() => {
      this.burst = false;
      this.flush(); // nothing left when the end came first and took the opening with it
    });
  }

  private flush(): void {
    clearTimeout(this.scheduled);
    this.scheduled = undefined; // a write in flight reschedules what is pending when it is done
    if (this.writing || this.broken || this.pending === 0) return;
    const batch: Batch = { from: this.next, to: this.end, cut: this.cut, last: this.last as ReplyEvent };
    this.next = this.end;
    this.cut = undefined;
    this.writing = this.write(batch).then(
      () => {
        this.writing = undefined;
        this.schedule(); // what piled up meanwhile: by the same rule, not at once
      },
      (error: unknown) => this.fail(error),
    );
  }

  private async write(batch: Batch): Promise<void> {
    const { key, generation, leaseMs } = this.options;
    const { last } = batch;
    if (isFinal(last)) {
      this.closed = true;
      this.stop();
      const keep = this.options.keep(last);
      const unread = this.options.forgettable && !keep.cacheable && !this.followed;
      const forget = { keepMs: keep.keepMs, cacheable: keep.cacheable, unread }; // not `...keep` (Node 20's slow path)
      const ended = unread ? await this.log.finish(key, generation, [], forget) : 'read';
      if (ended === 'read') await this.log.finish(key, generation, this.eventsOf(batch), keep);
      this.settle(true);
    } else this.answered(await this.log.append(key, generation, this.eventsOf(batch), leaseMs));
  }

  private eventsOf({ from, to, cut }: Batch): ReplyEvent[] {
    const { events } = this.options;
    const batch: ReplyEvent[] = [];
    for (let i = from; i < to; i++) batch.push(events.at(i));
    if (cut) batch.push(cut);
    return batch;
  }

  /** A call that was lost (the calls pattern not subscribed yet, a reconnect) still arrives: in the next write's answer. */
  private answered(answer: WriteAnswer): WriteAnswer {
    this.called ||= answer.called;
    this.followed = this.called || answer.readers > 0;
    this.options.onAnswer(answer);
    this.schedule();
    return answer;
  }

  private fail(error: unknown): void {
    this.broken = true;
    this.settle(false);
    this.stop();
    this.options.onError(error);
  }

  private stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.scheduled);
    this.unwatch?.();
  }
}

/**
 * How long pending events wait to be written: 0 for the end. The start (the head with the first token), which
 * followers elsewhere wait for before anything else, goes once the tokens that arrived with it are recorded
 * (`THIS_BURST`): a reply that arrived whole is then one write, its end, and not an opening whose answer the end must
 * wait for. Else a moment for more, so a fast reply is a write or two, not dozens. Undefined: until the next renewal or
 * call (an unfollowed reply on a log that can call the leader).
 */
function batchDelay(
  last: ReplyEvent | undefined,
  opening: boolean,
  followed: boolean,
  calls: boolean,
): number | undefined {
  if (last && isFinal(last)) return 0;
  if (opening) return THIS_BURST;
  if (followed) return WRITE_BATCH_MS;
  return calls ? undefined : UNFOLLOWED_BATCH_MS;
}
