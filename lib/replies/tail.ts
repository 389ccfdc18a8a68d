import { INTERRUPTED, LEADER_LOST, type ReplyEvent } from './events';
import { LiveReply } from './live-reply';
import { READ_BATCH, type SharedLog } from './shared-log';

export interface TailOptions {
  readonly key: string;
  readonly generation: string;
  /** What the claim (or the first read) already brought, and the cursor after it. */
  readonly events: readonly ReplyEvent[];
  readonly cursor: string;
  /** Between polls where the log cannot wake us (Upstash REST); with a watch, only a safety net. */
  readonly pollMs: number;
  /** The writer's lease: with a watch, we still look this often whether it is alive. */
  readonly leaseMs: number;
  /** Whether this reader was counted among the leader's remote readers (a follower), to give that back. */
  readonly counted: boolean;
  /** Called once the tail has ended (the reply ended, or its last local reader left). */
  readonly onDone: () => void;
}

const WATCHED_POLL_MS = 250;

/**
 * A reply being written on another instance, followed from here: one poller per instance, however many local readers
 * share it. It ends with the reply, or with a clean `reply_interrupted` when the writer's lease lapses first (its
 * process died) or the shared log cannot be read for a lease's length. Nobody waits forever.
 */
export function tailSharedReply(log: SharedLog, options: TailOptions): LiveReply {
  const { key, generation } = options;
  let stopped = false;
  // A wake that comes while we are reading is kept, so the next wait ends at once instead of missing it.
  let woken = false;
  let wake = () => {
    woken = true;
  };
  const live = new LiveReply({
    onIdle: () => {
      stopped = true;
      live.halt();
      wake();
    },
  });
  for (const event of options.events) live.push(event);
  const unwatch = log.watch?.(key, generation, () => wake());
  // The watch wakes us once when it starts listening (a write before then was not announced), then after each write;
  // the poll is only a safety net (a wake lost in a reconnect) that also notices a dead writer.
  const waitMs = unwatch ? Math.min(WATCHED_POLL_MS, options.leaseMs / 2) : options.pollMs;
  const sleep = () =>
    new Promise<void>((resolve) => {
      if (woken) {
        woken = false;
        return resolve();
      }
      const timer = setTimeout(done, waitMs);
      function done() {
        clearTimeout(timer);
        wake = () => {
          woken = true;
        };
        resolve();
      }
      wake = done;
    });

  void (async () => {
    // Never end synchronously, even for a reply that came whole with the claim: the caller is still building its entry.
    await Promise.resolve();
    let cursor = options.cursor;
    let failingSince: number | undefined;
    // A whole batch came: there may be more recorded already, which no wake will announce. A reader the leader does
    // not count (a resumed stream) brought nothing: it reads at once, and calls the leader to write what it holds.
    let more = options.events.length >= READ_BATCH || !options.counted;
    let call = !options.counted;
    while (!live.ended && !stopped) {
      if (!more) await sleep();
      if (stopped) break;
      try {
        const answer = await log.read(key, generation, cursor, call);
        call = false;
        failingSince = undefined;
        more = answer.events.length >= READ_BATCH;
        cursor = answer.cursor;
        for (const event of answer.events) live.push(event);
        if (!live.ended && !answer.writerAlive)
          live.push(options.counted && live.events.length === 0 ? LEADER_LOST : INTERRUPTED);
      } catch {
        more = false;
        failingSince ??= Date.now();
        if (Date.now() - failingSince >= options.leaseMs) live.push(INTERRUPTED);
      }
    }
    unwatch?.();
    if (options.counted) await log.leave(key, generation).catch(() => {});
    options.onDone();
  })();
  return live;
}
