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
  readonly events: ReplyEvent[] = [];
  /** Roughly what the events take (`eventBytes`), for the size caps. */
  bytes = 0;
  private readers = 0;
  private halted = false;
  private readonly waiting = new Set<() => void>();

  constructor(private readonly hooks: LiveReplyHooks = {}) {}

  get ended(): boolean {
    const last = this.events.at(-1);
    return last !== undefined && isFinal(last);
  }

  /** It ended with an error, not its end. */
  get failed(): boolean {
    return this.events.at(-1)?.type === 'error';
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
    for (const wake of this.waiting) wake();
    this.waiting.clear();
  }

  reader(): ReplyReader {
    this.readers++;
    let index = 0;
    let left = false;
    let wakeMe: (() => void) | undefined;
    const leave = () => {
      if (left) return;
      left = true;
      if (wakeMe) {
        this.waiting.delete(wakeMe);
        wakeMe();
      }
      if (--this.readers === 0) this.hooks.onIdle?.();
    };
    const take = (): ReplyEvent | undefined => {
      const event = left ? undefined : this.events[index];
      if (event) index++;
      return event;
    };
    const next = async (): Promise<ReplyEvent | undefined> => {
      while (!left) {
        const event = take();
        if (event) return event;
        if (this.ended) return undefined;
        await new Promise<void>((resolve) => {
          wakeMe = resolve;
          this.waiting.add(resolve);
        });
        wakeMe = undefined;
      }
      return undefined;
    };
    return { next, leave, take, ready: () => !left && index < this.events.length };
  }
}
