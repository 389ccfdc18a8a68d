import { clientClosed, ProxyError } from '../errors';
import type { Delta } from '../types';
import type { ServedReply } from '../upstream/failover';
import { type ReplyEvent, type ReplyHead, replayError } from './events';
import type { ReplyReader } from './live-reply';

export interface Replayed {
  readonly reply: ServedReply;
  readonly head: ReplyHead;
}

/**
 * A reader's view of a recorded reply as the handler's `ServedReply`, once its first token is in: so a reader
 * answers with the leader's status, and streams through the very same framing as a reply fresh from the upstream.
 * `pace`: wait out each delta's recorded offset (a paced cache replay).
 */
export async function replayReply(reader: ReplyReader, pace = false): Promise<Replayed> {
  const head = await nextOrThrow(reader);
  if (head.type !== 'head') throw corrupt(head.type);
  // The leader records its head only after its first token: wait for that too, so a failure here still gets a status.
  const first = await nextOrThrow(reader);
  const outcome: ServedReply['outcome'] = { deltas: 0 };
  const { served, adapted } = head.head;
  const reply: Replayed['reply'] = pace
    ? // A paced replay waits before each delta: nothing is ever ready ahead of its time.
      { tokens: pacedTokens(reader, first, outcome), outcome, served }
    : replayedReply(new ReplayedTokens(reader, first, outcome), outcome, served);
  return { reply: adapted ? Object.assign(reply, { adapted }) : reply, head: head.head };
}

function replayedReply(tokens: ReplayedTokens, outcome: ServedReply['outcome'], served: ReplyHead['served']) {
  return { tokens, outcome, served, ready: tokens.ready, take: tokens.take };
}

const END = Symbol('end');

/** One recorded event as a reader's token: a delta, the end (its finish reason and usage go to `outcome`), or none. */
function consume(event: ReplyEvent, outcome: ServedReply['outcome']): Delta | typeof END | undefined {
  if (event.type === 'end') {
    outcome.finishReason = event.finishReason;
    outcome.usage = event.usage;
    return END;
  }
  if (event.type === 'error') throw replayError(event.error);
  if (event.type !== 'delta') return undefined;
  outcome.deltas++;
  return event.delta;
}

const DONE: IteratorResult<Delta> = { done: true, value: undefined };

/**
 * The recorded deltas as the reply's tokens. A plain iterator, not an async generator: a delta already recorded is
 * handed out at once, and one not yet recorded resolves the step's one promise the moment it is (an async generator,
 * or a `next` awaiting the reader's own promise, costs several microtask turns per step, on the path of every token).
 */
class ReplayedTokens implements AsyncIterableIterator<Delta> {
  private done = false;

  constructor(
    private readonly reader: ReplyReader,
    private pending: ReplyEvent | undefined,
    private readonly outcome: ServedReply['outcome'],
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** `Reply.ready`: an event is here, taken from the reader or held back by `take`. */
  readonly ready = (): boolean => this.pending !== undefined || this.reader.ready();

  /**
   * `Reply.take`: the next event if it is a delta. Anything else (the end, an error, or an event that is no token) is
   * held for `next`, which consumes it as it always does.
   */
  readonly take = (): Delta | undefined => {
    if (this.done) return undefined;
    const event = this.nextEvent();
    if (event?.type !== 'delta') {
      this.pending = event;
      return undefined;
    }
    this.outcome.deltas++;
    return event.delta;
  };

  next(): Promise<IteratorResult<Delta>> {
    try {
      const step = this.step();
      if (step) return Promise.resolve(step);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const wake = () => {
        try {
          const step = this.step();
          if (step) resolve(step);
          else this.reader.whenReady(wake);
        } catch (error) {
          reject(error);
        }
      };
      this.reader.whenReady(wake);
    });
  }

  async return(): Promise<IteratorResult<Delta>> {
    this.done = true;
    return DONE;
  }

  /**
   * The next delta, or the end, from what is recorded; undefined when nothing is yet. A reader that will take nothing
   * more (it left: its client is gone) throws what the reply stream expects of a cancelled upstream.
   */
  private step(): IteratorResult<Delta> | undefined {
    if (this.done) return DONE;
    try {
      for (let event = this.nextEvent(); event; event = this.nextEvent()) {
        const step = consume(event, this.outcome);
        if (step === END) {
          this.done = true;
          return DONE;
        }
        if (step !== undefined) return { done: false, value: step };
      }
    } catch (error) {
      this.done = true;
      throw error;
    }
    if (this.reader.over) throw clientClosed();
    return undefined;
  }

  private nextEvent(): ReplyEvent | undefined {
    const event = this.pending ?? this.reader.take();
    this.pending = undefined;
    return event;
  }
}

/** A paced cache replay (`CACHE_REPLAY=paced`): each delta waits for its recorded offset from the start. */
async function* pacedTokens(
  reader: ReplyReader,
  first: ReplyEvent,
  outcome: ServedReply['outcome'],
): AsyncGenerator<Delta> {
  const startedAt = Date.now();
  for (let event: ReplyEvent | undefined = first; event; event = await reader.next()) {
    if (event.type === 'delta') await sleepUntil(startedAt + event.at);
    const step = consume(event, outcome);
    if (step === END) return;
    if (step !== undefined) yield step;
  }
  throw clientClosed();
}

/** The next event; an error recorded before the first token is thrown with its status, as the leader met it. */
async function nextOrThrow(reader: ReplyReader): Promise<ReplyEvent> {
  const event = await reader.next();
  if (!event) throw clientClosed();
  if (event.type === 'error') throw replayError(event.error);
  return event;
}

function corrupt(type: string): ProxyError {
  return new ProxyError(502, 'reply_log_corrupt', 'The assistant could not answer. Please try again.', {
    detail: `reply log starts with ${type}, not head`,
  });
}

function sleepUntil(at: number): Promise<void> {
  const ms = at - Date.now();
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
