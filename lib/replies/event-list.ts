import type { ReplyEvent } from './events';

/** Text deltas per chunk: a chunk's texts become one string once it is full. */
const CHUNK = 64;
/** A delta that is an object of its own (head, end, error, reasoning, tool calls): its `at` slot holds -1 - index. */
const isObject = (at: number) => at < 0;

/**
 * A reply's events as a reply log keeps them while it runs, and for its cache hits: compactly, since a long reply is
 * thousands of text deltas. Each was an object of its own (about 56 bytes a token on Node 20 with its array slot; its
 * words are mostly strings `JSON.parse` interned, shared already); here its text is part of one string per 64
 * deltas, and its time offset and end a pair of numbers in a typed array (out of the collected heap): 8 bytes and its
 * text. The other events, a few per reply, are kept as they are. A delta read back is a new object (short-lived: the
 * reader writes it out and drops it). The typed array comes with the first full chunk: one of that size is kept off
 * the collected heap, and making one costs about 2 µs on Node 20 and 24 (against 0.1 µs for the plain array the
 * numbers are in until then), so a short reply does without.
 */
export class EventList {
  private count = 0;
  /** Per event: its time offset (`at`; for an object, -1 - its index in `objects`), and its text's end offset. */
  private slots: number[] | Int32Array = [];
  private readonly objects: ReplyEvent[] = [];
  /** The text of each full chunk of `CHUNK` events (objects count as empty texts). */
  private readonly chunks: string[] = [];
  /** The texts of the chunk being filled. */
  private open: string[] = [];
  private textLength = 0;
  private lastEvent: ReplyEvent | undefined;

  get length(): number {
    return this.count;
  }

  get last(): ReplyEvent | undefined {
    return this.lastEvent;
  }

  push(event: ReplyEvent): void {
    const i = 2 * this.count;
    if (i === 2 * CHUNK || (i > 2 * CHUNK && i + 2 > this.slots.length)) this.grow();
    // A text delta with a time offset the slot can hold (a reply read back from the shared log is checked too).
    if (
      event.type === 'delta' &&
      typeof event.delta === 'string' &&
      event.at >= 0 &&
      (event.at | 0) === event.at
    ) {
      this.slots[i] = event.at;
      this.open.push(event.delta);
      this.textLength += event.delta.length;
    } else {
      this.slots[i] = -1 - this.objects.length;
      this.objects.push(event);
      this.open.push('');
    }
    this.slots[i + 1] = this.textLength;
    this.lastEvent = event;
    if (++this.count % CHUNK === 0) {
      this.chunks.push(this.open.join(''));
      this.open = [];
    }
  }

  /** The event at `index` (< `length`). */
  at(index: number): ReplyEvent {
    const at = this.slots[2 * index] as number;
    if (isObject(at)) return this.objects[-1 - at] as ReplyEvent;
    const chunk = Math.floor(index / CHUNK);
    const delta =
      chunk < this.chunks.length ? this.sealedText(chunk, index) : (this.open[index % CHUNK] as string);
    return { type: 'delta', delta, at };
  }

  private sealedText(chunk: number, index: number): string {
    const first = chunk * CHUNK;
    const base = first === 0 ? 0 : (this.slots[2 * first - 1] as number);
    const start = index === 0 ? 0 : (this.slots[2 * index - 1] as number);
    return (this.chunks[chunk] as string).slice(start - base, (this.slots[2 * index + 1] as number) - base);
  }

  private grow(): void {
    const bigger = new Int32Array(Math.max(4 * CHUNK, 2 * this.slots.length));
    bigger.set(this.slots);
    this.slots = bigger;
  }
}
