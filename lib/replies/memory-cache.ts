import type { LiveReply } from './live-reply';

interface Cached {
  readonly reply: LiveReply;
  readonly expiresAt: number;
}

/**
 * Complete replies of this instance, kept for their TTL and at most `maxBytes` in all: the least recently used go
 * first. A Map keeps insertion order, so a hit moves its entry to the end and eviction takes from the front.
 */
export class MemoryCache {
  private readonly entries = new Map<string, Cached>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number,
  ) {}

  get(key: string): LiveReply | undefined {
    const cached = this.entries.get(key);
    if (!cached) return undefined;
    this.entries.delete(key);
    if (cached.expiresAt <= this.now()) {
      this.bytes -= cached.reply.bytes;
      return undefined;
    }
    this.entries.set(key, cached);
    return cached.reply;
  }

  set(key: string, reply: LiveReply, ttlMs: number): void {
    if (reply.bytes > this.maxBytes) return;
    this.delete(key);
    this.entries.set(key, { reply, expiresAt: this.now() + ttlMs });
    this.bytes += reply.bytes;
    for (const [oldest, cached] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= cached.reply.bytes;
    }
  }

  /** Forgets `key` if it still holds `reply` (a newer reply of the same key stays). */
  drop(key: string, reply: LiveReply): void {
    if (this.entries.get(key)?.reply === reply) this.delete(key);
  }

  private delete(key: string): void {
    const cached = this.entries.get(key);
    if (!cached) return;
    this.entries.delete(key);
    this.bytes -= cached.reply.bytes;
  }
}
