import type { ReplyEvent } from './events';

/** Text deltas per chunk: a chunk's texts become one string once it is full. */
const CHUNK = 64;
/** A delta that is an object of its own (head, end, error, reasoning, tool calls): its `at` slot holds -1 - index. */
const isObject = (at: number) => at < 0;

/**
 * A reply's events as a reply log keeps them while it runs, and for its cache hits: compactly, since a long reply is
 * thousands of text deltas. Each was an object of its own (about 56 bytes a token on Node 20 with its array slot; its
 * words are mostly strings `JSON.parse` interned, shared already); here its text is part of one string per 64
 * deltas, and its time offset and end a pair of numbers: 8 bytes and its text. The other events, a few per reply, are
 * kept as they are. A delta read back is a new object (short-lived: the reader writes it out and drops it).
 * The numbers are kept a chunk at a time: the first chunk's in a plain array, every later one's in a typed array of
 * its own, out of the collected heap. Making a typed array costs about 2 µs on Node 20 and 24 (against 0.1 µs for a
 * plain array), so a short reply does without; and one array grown by doubling held up to twice what it used (in heap
 * snapshots of 500 streams 250-500 tokens in, 4-8 KB a stream where they needed 2-4).
 */
export class EventList {
  private count = 0;
  /**
   * Per event, in the chunk's block: its time offset (`at`; for an object, -1 - its index in `objects`), and its
   * text's end offset.
   */
  private readonly blocks: (number[] | Int32Array)[] = [[]];
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
    const inChunk = this.count % CHUNK;
    if (inChunk === 0 && this.count > 0) this.blocks.push(new Int32Array(2 * CHUNK));
    const slots = this.blocks[this.blocks.length - 1] as number[] | Int32Array;
    const i = 2 * inChunk;
    // A text delta with a time offset the slot can hold (a reply read back from the shared log is checked too).
    if (
      event.type === 'delta' &&
      typeof event.delta === 'string' &&
      event.at >= 0 &&
      (event.at | 0) === event.at
    ) {
      slots[i] = event.at;
      this.open.push(event.delta);
      this.textLength += event.delta.length;
    } else {
      slots[i] = -1 - this.objects.length;
      this.objects.push(event);
      this.open.push('');
    }
    slots[i + 1] = this.textLength;
    this.lastEvent = event;
    if (++this.count % CHUNK === 0) {
      this.chunks.push(this.open.join(''));
      this.open = [];
    }
  }

  /** The event at `index` (< `length`). */
  at(index: number): ReplyEvent {
    const at = this.slot(index, 0);
    if (isObject(at)) return this.objects[-1 - at] as ReplyEvent;
    const chunk = Math.floor(index / CHUNK);
    const delta =
      chunk < this.chunks.length ? this.sealedText(chunk, index) : (this.open[index % CHUNK] as string);
    return { type: 'delta', delta, at };
  }

  private sealedText(chunk: number, index: number): string {
    const first = chunk * CHUNK;
    const base = first === 0 ? 0 : this.slot(first - 1, 1);
    const start = index === 0 ? 0 : this.slot(index - 1, 1);
    return (this.chunks[chunk] as string).slice(start - base, this.slot(index, 1) - base);
  }

  /** Event `index`'s time offset (`which` 0) or text end (1). */
  private slot(index: number, which: 0 | 1): number {
    const block = this.blocks[Math.floor(index / CHUNK)] as number[] | Int32Array;
    return block[2 * (index % CHUNK) + which] as number;
  }
}
