/*
 * Collections for what comes and goes with requests (replies in flight, their aborts, subscriptions, lease timers),
 * in place of `Map` and `Set`. V8 keeps a `Map`'s or `Set`'s table when the collection outgrows it or shrinks (for
 * iterators still walking it): the old table points at the new one and still holds every entry it had. Once one table
 * of a long-lived collection has reached the old generation, the young generation's collections must keep the next
 * table alive, and that one the next, along with every entry any of them held, until a full collection: so with
 * requests in flight together, each one's objects (a reply in flight reaches its whole request) were copied to the
 * old generation: 7.6 KB a request at 32 clients with the reply log on, and 0.23 KB with these and the reply reader
 * made a class (`--trace-gc-nvp`; see the README's "What a request promotes"). A dictionary object's old table points
 * at nothing, and neither does a list node once unlinked.
 */

/** A string-keyed map on a dictionary object (`Object.create(null)`: no prototype, so any key is a key). */
export class InFlightMap<V> {
  private entries: Record<string, V> = Object.create(null);
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    return this.entries[key];
  }

  has(key: string): boolean {
    return key in this.entries;
  }

  set(key: string, value: V): this {
    if (!(key in this.entries)) this.count++;
    this.entries[key] = value;
    return this;
  }

  delete(key: string): boolean {
    if (!(key in this.entries)) return false;
    delete this.entries[key];
    this.count--;
    return true;
  }

  values(): V[] {
    return Object.values(this.entries);
  }

  clear(): void {
    this.entries = Object.create(null);
    this.count = 0;
  }
}

interface Node<T> {
  readonly value: T;
  prev: Node<T> | undefined;
  next: Node<T> | undefined;
}

/** A set of objects as a linked list: `add` answers the member's own removal, and a removed node is cut loose. */
export class InFlightSet<T> {
  private head: Node<T> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `value` (again, if it is there: each add is a member of its own); call the answer to remove it, once. */
  add(value: T): () => void {
    const node: Node<T> = { value, prev: undefined, next: this.head };
    if (this.head) this.head.prev = node;
    this.head = node;
    this.count++;
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      this.unlink(node);
    };
  }

  /** The members now, newest first: a copy, so that removing members while going through it skips none. */
  values(): T[] {
    const values: T[] = [];
    for (let node = this.head; node; node = node.next) values.push(node.value);
    return values;
  }

  private unlink(node: Node<T>): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    node.prev = undefined;
    node.next = undefined;
    this.count--;
  }
}
