import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventList } from '../lib/replies/event-list';
import { eventBytes, type ReplyEvent } from '../lib/replies/events';
import { LiveReply } from '../lib/replies/live-reply';

const head: ReplyEvent = {
  type: 'head',
  head: { served: { model: 'm', provider: 'p', attempts: 1, fallback: 'none' }, messageId: 'x' },
};
const text = (delta: string, at: number): ReplyEvent => ({ type: 'delta', delta, at });

const anyEvent: fc.Arbitrary<ReplyEvent> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.string({ unit: 'grapheme', maxLength: 12 }), fc.nat())
      .map(([d, at]) => text(d, at)),
  },
  // Offsets a slot cannot hold, kept as objects: negative, fractional, past 32 bits.
  fc.tuple(fc.string(), fc.constantFrom(-1, 0.5, 2 ** 31, -(2 ** 31) - 1)).map(([d, at]) => text(d, at)),
  fc
    .tuple(fc.string(), fc.nat())
    .map(([reasoning, at]): ReplyEvent => ({ type: 'delta', delta: { reasoning }, at })),
  fc.constant(head),
  fc.constant<ReplyEvent>({ type: 'end', finishReason: 'stop' }),
);

describe('EventList: a reply kept compactly', () => {
  it('gives back every event as pushed, across chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { maxLength: 400, size: 'max' }), (events) => {
        const list = new EventList();
        for (const event of events) list.push(event);
        expect(list.length).toBe(events.length);
        expect(list.last).toBe(events.at(-1));
        expect(Array.from({ length: list.length }, (_, i) => list.at(i))).toEqual(events);
      }),
      { numRuns: 200 },
    );
  });

  it('reads back a long reply’s multi-byte text exactly, from many full chunks', () => {
    const list = new EventList();
    const words = Array.from({ length: 1_000 }, (_, i) => ` wörd${i}🦊`);
    list.push(head);
    for (const [i, word] of words.entries()) list.push(text(word, i));
    expect(list.at(0)).toBe(head);
    for (let i = 0; i < words.length; i++) expect(list.at(i + 1)).toEqual(text(words[i] as string, i));
  });

  it('a reader that joins late reads the whole reply from the start, then each new event', async () => {
    const live = new LiveReply();
    live.push(head);
    for (let i = 0; i < 150; i++) live.push(text(`t${i}`, i));
    const reader = live.reader();
    const read: ReplyEvent[] = [];
    for (let i = 0; i < 151; i++) read.push((await reader.next()) as ReplyEvent);
    expect(read[0]).toBe(head);
    expect(read.slice(1).map((e) => (e.type === 'delta' ? e.delta : ''))).toEqual(
      Array.from({ length: 150 }, (_, i) => `t${i}`),
    );
    const pending = reader.next();
    live.push(text('last', 151));
    expect(await pending).toEqual(text('last', 151));
    live.push({ type: 'end' });
    expect(await reader.next()).toEqual({ type: 'end' });
    expect(await reader.next()).toBeUndefined();
  });
});

describe('eventBytes: what a recorded event counts for the size caps', () => {
  it('bounds the head and the end from above without serializing them (twice their JSON at least)', () => {
    const big = 2 ** 53 - 1;
    const usage = {
      promptTokens: big,
      cachedPromptTokens: big,
      completionTokens: big,
      reasoningTokens: big,
      totalTokens: big,
    };
    const served = {
      model: 'a-rather-long-model-name',
      provider: 'fallback-2',
      attempts: big,
      fallback: 'message',
    } as const;
    const events: ReplyEvent[] = [
      head,
      {
        type: 'head',
        head: {
          served,
          messageId: 'm'.repeat(80),
          adapted: ['max_tokens→max_completion_tokens', '-temperature'],
        },
      },
      {
        type: 'head',
        head: {
          served: { model: undefined, provider: undefined, attempts: 3, fallback: 'message' },
          messageId: '',
        },
      },
      { type: 'end' },
      { type: 'end', finishReason: 'content_filter', usage },
    ];
    for (const event of events)
      expect(eventBytes(event)).toBeGreaterThanOrEqual(2 * JSON.stringify(event).length);
  });

  it('measures a head read back in another shape by its JSON, without throwing', () => {
    const odd = { type: 'head', head: {} } as unknown as ReplyEvent;
    expect(eventBytes(odd)).toBe(2 * JSON.stringify(odd).length);
  });
});
