import { describe, expect, it } from 'vitest';
import type { ReplyEvent } from '../lib/replies/events';
import { LiveReply } from '../lib/replies/live-reply';

const delta = (text: string, at = 0): ReplyEvent => ({ type: 'delta', delta: text, at });

describe('a live reply and its readers (lib/replies/live-reply.ts)', () => {
  it('wakes every wait of a reader once, in order, and a reader that left is waited for no more', () => {
    const live = new LiveReply();
    const reader = live.reader();
    const woken: string[] = [];
    reader.whenReady(() => woken.push('first'));
    reader.whenReady(() => woken.push('second'));
    live.push(delta('a'));
    expect(woken).toEqual(['first', 'second']);
    live.push(delta('b'));
    expect(woken).toEqual(['first', 'second']); // each wait is woken once
    expect(reader.take()).toEqual(delta('a'));
    expect(reader.take()).toEqual(delta('b'));
    reader.whenReady(() => woken.push('third'));
    reader.leave(); // leaving wakes it, then nothing more does
    expect(woken).toEqual(['first', 'second', 'third']);
    live.push(delta('c'));
    expect(woken).toEqual(['first', 'second', 'third']);
    expect(reader.over).toBe(true);
  });

  it('tells its owner when the last reader leaves, after waking it, and forgets the owner once ended', () => {
    const told: string[] = [];
    const live = new LiveReply({ onIdle: () => told.push('idle'), onEvent: (e) => told.push(e.type) });
    const one = live.reader();
    const two = live.reader();
    one.whenReady(() => told.push('one woken'));
    one.leave();
    two.leave();
    expect(told).toEqual(['one woken', 'idle']);
    const three = live.reader();
    live.push(delta('a'));
    live.push({ type: 'end', finishReason: 'stop' });
    three.leave(); // ended: a reply kept for cache hits holds no hooks into the request that made it
    expect(told).toEqual(['one woken', 'idle', 'delta', 'end']);
  });
});
