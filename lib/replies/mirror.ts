import { failure, isFinal, type ReplyEvent } from './events';
import type { SharedLog, WriteAnswer } from './shared-log';

export interface MirrorOptions {
  readonly key: string;
  readonly generation: string;
  readonly leaseMs: number;
  /** Past this many bytes the reply stops being recorded: readers elsewhere get a clean error. */
  readonly maxBytes: number;
  /** At the end: keep it as the key's cache hit for `keepMs`, or only `keepMs` for readers catching up. */
  readonly keep: (last: ReplyEvent) => { keepMs: number; cacheable: boolean };
  /**
   * What each write learnt: a stop (`DELETE .../stream`, or the lease was lost) and how many readers follow from
   * other instances.
   */
  readonly onAnswer: (answer: WriteAnswer) => void;
  /** The shared log failed: the reply goes on here, unrecorded elsewhere. */
  readonly onError: (error: unknown) => void;
}

export interface Mirror {
  /** Called with each recorded event, in order. */
  add(event: ReplyEvent, bytesSoFar: number): void;
  /** Renews the lease now and tells how many readers follow from other instances. */
  renew(): Promise<WriteAnswer | undefined>;
}

/**
 * How long events wait to be written together: readers elsewhere see them at most this much later. While no reader
 * follows from another instance, a write serves only those yet to come (and the cache), so writes are rarer. Where
 * the log can call the leader (`watchCalls`, TCP), an unfollowed reply is written only with its lease renewals, and
 * at once when a follower, a stop or a resumed reader calls: a 1-second paced reply takes 6 script calls instead of
 * 16 (under heavy load writes pile up behind each other anyway, so the saving is in Redis commands more than in CPU).
 * Otherwise (Upstash REST) the leader learns who follows only from its writes' answers, so it writes every tenth of a
 * second (not per token: Upstash bills per command).
 */
const WRITE_BATCH_MS = 10;
const UNFOLLOWED_BATCH_MS = 100;

const TOO_LARGE = failure(
  502,
  'reply_too_large',
  'This reply is too long to follow from here. Please send your message again.',
);

/**
 * Copies a leader's reply to the shared log for readers on other instances. Writes are batched: events wait a moment
 * for more (see `batchDelay`), and while a write is in flight they pile up for the next, so a fast stream costs a few
 * commands and a slow one at most a command per token. A timer renews the lease between writes.
 */
export function mirrorTo(log: SharedLog, options: MirrorOptions): Mirror {
  const { key, generation, leaseMs } = options;
  let pending: ReplyEvent[] = [];
  let writing: Promise<void> | undefined;
  let closed = false;
  let broken = false;
  let followed = false;
  let called = false; // someone called from elsewhere: written promptly from then on
  const answered = (answer: WriteAnswer) => {
    followed = called || answer.readers > 0;
    options.onAnswer(answer);
    return answer;
  };
  const fail = (error: unknown) => {
    broken = true;
    stopTimer();
    options.onError(error);
  };
  // What is pending goes now, or else a renewal: its answer says whether to stop. A data write renews the lease too.
  const writeOrRenew = () => void (pending.length ? flush() : renew());
  const unwatch = log.watchCalls?.(key, generation, () => {
    called = followed = true;
    writeOrRenew();
  });
  const write = async (batch: ReplyEvent[]) => {
    const last = batch.at(-1);
    if (last && isFinal(last)) {
      closed = true;
      stopTimer();
      await log.finish(key, generation, batch, options.keep(last));
    } else answered(await log.append(key, generation, batch, leaseMs));
  };
  let scheduled: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (writing || broken || pending.length === 0) return;
    clearTimeout(scheduled);
    scheduled = undefined;
    const batch = pending;
    pending = [];
    writing = write(batch).then(
      () => {
        writing = undefined;
        flush();
      },
      (error: unknown) => fail(error),
    );
  };
  const timer = setInterval(writeOrRenew, Math.max(50, Math.floor(leaseMs / 3)));
  const stopTimer = () => {
    clearInterval(timer);
    unwatch?.();
  };
  const renew = async () => {
    if (closed || broken) return undefined;
    return log.append(key, generation, [], leaseMs).then(answered, (error: unknown) => {
      fail(error);
      return undefined;
    });
  };
  return {
    add(event, bytesSoFar) {
      if (closed || broken) return;
      // Over the cap: stop recording, and end the log with an error for the readers elsewhere.
      pending.push(bytesSoFar > options.maxBytes && !isFinal(event) ? TOO_LARGE : event);
      if (pending.at(-1) === TOO_LARGE) closed = true;
      const wait = batchDelay(pending, followed, unwatch !== undefined);
      if (wait === 0) flush();
      else if (wait !== undefined) scheduled ??= setTimeout(flush, wait);
    },
    renew,
  };
}

/**
 * How long pending events wait to be written: 0 for the end, and for the start (the head with the first token),
 * which followers elsewhere wait for before anything else; else a moment for more, so a fast reply is a write or two,
 * not dozens. Undefined: until the next renewal or call (an unfollowed reply on a log that can call the leader).
 */
function batchDelay(pending: readonly ReplyEvent[], followed: boolean, calls: boolean): number | undefined {
  const last = pending.at(-1);
  const opening = pending[0]?.type === 'head' && pending.length > 1;
  if (last && (isFinal(last) || opening)) return 0;
  if (followed) return WRITE_BATCH_MS;
  return calls ? undefined : UNFOLLOWED_BATCH_MS;
}
