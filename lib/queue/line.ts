import { InFlightMap } from '../in-flight';
import type { PlaceInLine } from '../types';

/** One request waiting in a provider's line. */
export interface Waiter {
  readonly callerId: string;
  readonly priority: number;
  readonly tokens: number;
  readonly onPlace?: ((place: PlaceInLine | undefined) => void) | undefined;
}

/** One priority's waiters: each caller's, in arrival order, and whose turn is next (round-robin). */
interface Level {
  readonly byCaller: InFlightMap<Waiter[]>;
  /** Callers with someone waiting, in turn order: the first goes next, then moves to the back. */
  readonly turns: string[];
}

/**
 * The order in which one instance's waiters reach a provider. The highest priority goes first; within a priority,
 * callers take turns, one request each, so one caller's burst of 50 waits behind everyone else's next request. The
 * bound: a request of a caller with k requests ahead of it in line goes within (k + 1) x (callers waiting) grants.
 */
export interface Line {
  readonly size: number;
  add(waiter: Waiter): void;
  /** Takes a waiter out (it left, or timed out); false if it was not in line. */
  remove(waiter: Waiter): boolean;
  /** Whose turn it is: the next waiter of the first caller in turn at the highest priority. */
  next(): Waiter | undefined;
  /** `waiter` got a slot: out of line, and its caller to the back of its turns. */
  served(waiter: Waiter): void;
  /** Every waiter with its 1-based position, in serving order. */
  positions(): Iterable<[Waiter, number]>;
}

export function createLine(): Line {
  const levels = new Map<number, Level>();
  let size = 0;
  let order: number[] = []; // priorities present, highest first
  const levelOf = (priority: number): Level => {
    let level = levels.get(priority);
    if (!level) {
      level = { byCaller: new InFlightMap(), turns: [] };
      levels.set(priority, level);
      order = [...levels.keys()].sort((a, b) => b - a);
    }
    return level;
  };
  const drop = (waiter: Waiter): boolean => {
    const level = levels.get(waiter.priority);
    const mine = level?.byCaller.get(waiter.callerId);
    const at = mine ? mine.indexOf(waiter) : -1;
    if (!level || !mine || at < 0) return false;
    mine.splice(at, 1);
    size--;
    if (mine.length === 0) {
      level.byCaller.delete(waiter.callerId);
      level.turns.splice(level.turns.indexOf(waiter.callerId), 1);
    }
    if (level.turns.length === 0) {
      levels.delete(waiter.priority);
      order = order.filter((p) => p !== waiter.priority);
    }
    return true;
  };
  return {
    get size() {
      return size;
    },
    add(waiter) {
      const level = levelOf(waiter.priority);
      const mine = level.byCaller.get(waiter.callerId);
      if (mine) mine.push(waiter);
      else {
        level.byCaller.set(waiter.callerId, [waiter]);
        level.turns.push(waiter.callerId);
      }
      size++;
    },
    remove: drop,
    next() {
      const level = order[0] === undefined ? undefined : levels.get(order[0]);
      const first = level?.turns[0];
      return first === undefined ? undefined : level?.byCaller.get(first)?.[0];
    },
    served(waiter) {
      const level = levels.get(waiter.priority);
      const rest = level?.byCaller.get(waiter.callerId)?.length ?? 0;
      if (!drop(waiter) || !level || rest <= 1) return;
      const turn = level.turns.indexOf(waiter.callerId);
      level.turns.splice(turn, 1);
      level.turns.push(waiter.callerId);
    },
    *positions() {
      let position = 0;
      for (const priority of order) {
        const level = levels.get(priority);
        if (!level) continue;
        // Round by round: each caller in turn order sends its next waiter, until every caller has none left.
        let callers = level.turns.map((id) => level.byCaller.get(id) ?? []);
        for (let round = 0; callers.length > 0; round++) {
          for (const waiters of callers) {
            const waiter = waiters[round];
            if (waiter) yield [waiter, ++position] as [Waiter, number];
          }
          callers = callers.filter((waiters) => waiters.length > round + 1);
        }
      }
    },
  };
}
