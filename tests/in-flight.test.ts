import { describe, expect, it } from 'vitest';
import { InFlightMap, InFlightSet } from '../lib/in-flight';

describe('InFlightMap', () => {
  it('keeps, replaces, counts and forgets entries by key, any string being a key', () => {
    const map = new InFlightMap<number>();
    for (const key of ['a', '__proto__', 'constructor', 'toString', '123', '']) map.set(key, key.length);
    expect(map.size).toBe(6);
    expect(map.get('__proto__')).toBe(9);
    expect(map.has('constructor')).toBe(true);
    expect(map.has('hasOwnProperty')).toBe(false);
    expect(map.get('valueOf')).toBeUndefined();
    map.set('a', 7);
    expect(map.size).toBe(6);
    expect(map.get('a')).toBe(7);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    expect(map.size).toBe(5);
    expect(map.values().sort()).toEqual([0, 11, 3, 8, 9].sort());
    map.clear();
    expect(map.size).toBe(0);
    expect(map.get('__proto__')).toBeUndefined();
  });

  it('keeps an entry whose value is undefined', () => {
    const map = new InFlightMap<undefined>();
    map.set('k', undefined);
    expect(map.has('k')).toBe(true);
    expect(map.size).toBe(1);
    expect(map.delete('k')).toBe(true);
    expect(map.size).toBe(0);
  });
});

describe('InFlightSet', () => {
  it('adds each member on its own, and removes each once, wherever it is in the list', () => {
    const set = new InFlightSet<string>();
    const removeA = set.add('a');
    const removeB = set.add('b');
    const removeB2 = set.add('b');
    const removeC = set.add('c');
    expect(set.size).toBe(4);
    expect(set.values()).toEqual(['c', 'b', 'b', 'a']);
    removeB(); // from the middle
    removeB();
    expect(set.values()).toEqual(['c', 'b', 'a']);
    removeC(); // the head
    removeA(); // the tail
    expect(set.size).toBe(1);
    expect(set.values()).toEqual(['b']);
    removeB2();
    expect(set.size).toBe(0);
    expect(set.values()).toEqual([]);
    set.add('d');
    expect(set.values()).toEqual(['d']);
  });

  it('gives its members as a copy: removing them while going through it skips none', () => {
    const set = new InFlightSet<number>();
    const removers = new Map<number, () => void>();
    for (let i = 0; i < 5; i++) removers.set(i, set.add(i));
    const seen: number[] = [];
    for (const member of set.values()) {
      seen.push(member);
      removers.get(member)?.(); // itself
      removers.get(member - 1)?.(); // and the next one along
    }
    expect(seen).toEqual([4, 3, 2, 1, 0]);
    expect(set.size).toBe(0);
  });
});
