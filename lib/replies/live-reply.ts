import { EventList } from './event-list';
import { eventBytes, isFinal, type ReplyEvent } from './events';

/** A reader of one reply: every event from the first, then each new one as it is recorded. */
export interface ReplyReader {
  /** The next event, or undefined once the reply has ended (or this reader left). */
  next(): Promise<ReplyEvent | undefined>;
  /** Stops reading; a pending `next` resolves with undefined. Idempotent. */
  leave(): void;
  /** An event is already recorded for this reader: `next` will not wait for the producer. */
  ready(): boolean;
  /** The next event if it is already recorded (so `ready` said true), without a promise; else undefined. */
  take(): ReplyEvent | undefined;
  /**
   * Calls `wake` once, when the next event is recorded or this reader leaves: `next` without a promise of its own, for
   * the path of every token. At once if either has already happened.
   */
  whenReady(wake: () => void): void;
  /** It will take nothing more: it left, or it has taken the reply's last event. */
  readonly over: boolean;
}

export interface LiveReplyHooks {
  /** The last reader left (the reply may go on: the owner decides whether to stop it). */
  readonly onIdle?: () => void;
  /** Each event as it is recorded: the leader mirrors them to the shared log. */
  readonly onEvent?: (event: ReplyEvent) => void;
}

/**
 * One reply recorded in this process as it is produced, read by any number of readers, each from the start. The
 * leader's own client is a reader like the others, so a client leaving never stops the reply for the rest.
 */
export class LiveReply {
  readonly events = new EventList();
  /** Roughly what the events take (`eventBytes`), for the size caps. */
  bytes = 0;
  private readers = 0;
  private halted = false;
  /** Readers waiting for the next event (`whenReady`). */
  private waiting: LiveReader[] = [];

  constructor(private hooks: LiveReplyHooks = {}) {}

  get ended(): boolean {
    const last = this.events.last;
    return last !== undefined && isFinal(last);
  }

  /** It ended with an error, not its end. */
  get failed(): boolean {
    return this.events.last?.type === 'error';
  }

  /**
   * Whether a new reader may join it: a complete reply, or one still being recorded. Not one that failed (its error
   * was its readers', not a reply), nor one whose producer stopped before the end (`halt`): nothing more would come.
   */
  get joinable(): boolean {
    return this.ended ? !this.failed : !this.halted;
  }

  /**
   * Its producer stopped, or was told to, before the end (a shared tail whose last reader left, a leader nobody reads
   * any more): see `joinable`.
   */
  halt(): void {
    this.halted = true;
  }

  get readerCount(): number {
    return this.readers;
  }

  push(event: ReplyEvent): void {
    if (this.ended) return;
    this.events.push(event);
    this.bytes += eventBytes(event);
    this.hooks.onEvent?.(event);
    // Ended: nothing more to record or stop. A reply kept for cache hits then reaches its events, not its request.
    if (isFinal(event)) this.hooks = {};
    // Swapped first: a reader woken may wait again at once, for the event after this one.
    const woken = this.waiting;
    if (woken.length === 0) return;
    this.waiting = [];
    for (const reader of woken) reader.wake();
  }

  reader(): ReplyReader {
    this.readers++;
    return new LiveReader(this);
  }

  /** A reader waits for the next event (`LiveReader.wake`); for `LiveReader` only, as `left` is. */
  wait(reader: LiveReader): void {
    this.waiting.push(reader);
  }

  /** A reader left: it waits no more (a `whenReady` of its runs now), and the last one leaving tells the owner. */
  left(reader: LiveReader): void {
    const at = this.waiting.indexOf(reader);
    if (at >= 0) this.waiting.splice(at, 1);
    reader.wake();
    if (--this.readers === 0) this.hooks.onIdle?.();
  }
}

/**
 * A class, not an object literal with a getter: V8 keeps each such literal's getter where the young generation's
 * collections cannot free it, so everything it closes over (the reply, and through its hooks the whole request) was
 * copied to the old generation: 6.7 KB a request at 1 client (see the README's "What a request promotes").
 */
class LiveReader implements ReplyReader {
  private index = 0;
  private gone = false;
  private onReady: (() => void) | undefined;

  constructor(private readonly live: LiveReply) {}

  get over(): boolean {
    return this.gone || (this.live.ended && this.index >= this.live.events.length);
  }

  leave(): void {
    if (this.gone) return;
    this.gone = true;
    this.live.left(this);
  }

  take(): ReplyEvent | undefined {
    if (this.gone || this.index >= this.live.events.length) return undefined;
    return this.live.events.at(this.index++);
  }

  ready(): boolean {
    return !this.gone && this.index < this.live.events.length;
  }

  whenReady(wake: () => void): void {
    if (this.over || this.index < this.live.events.length) {
      wake();
      return;
    }
    const waiting = this.onReady;
    // A second wait before the first was woken: both are called, and the reader waits once.
    this.onReady = waiting
      ? () => {
          waiting();
          wake();
        }
      : wake;
    if (!waiting) this.live.wait(this);
  }

  /** The event it waited for is recorded, or it left: its `whenReady` callback runs, once. */
  wake(): void {
    const onReady = this.onReady;
    this.onReady = undefined;
    onReady?.();
  }

  next(): Promise<ReplyEvent | undefined> {
    const event = this.take();
    if (event || this.over) return Promise.resolve(event);
    return new Promise((resolve) => this.whenReady(() => resolve(this.next())));
  }
}
