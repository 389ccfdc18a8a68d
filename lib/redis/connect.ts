import type { Redis } from '@upstash/redis';
import { invalid } from '../config/env';
import type { StoreConfig } from '../config/rate-limit';
import { STORE_CALL_LIMIT_FACTOR } from '../limits/store-guard';
import { upstashRestRedis } from './upstash-rest';

/**
 * Listens on a pub/sub channel until the returned function is called. Only a connection that can hold a
 * subscription open has one (TCP); Upstash REST has none, and its readers poll instead.
 */
export type Subscribe = (
  channel: string,
  onMessage: (message: string) => void,
  options?: SubscribeOptions,
) => () => void;

export interface SubscribeOptions {
  /**
   * A glob the channel matches: for channels that come and go with each request, the connection listens to the
   * pattern once, for good (PSUBSCRIBE), and hands each message to the channel's listeners, instead of a SUBSCRIBE
   * and an UNSUBSCRIBE each.
   */
  readonly pattern?: string;
  /**
   * Called once the channel is heard (soon after, if it already was): a message published before then was missed,
   * so a watcher that must not miss one (it checks after each) checks once more.
   */
  readonly onListening?: () => void;
}

/** A Redis client and how to let it go (a TCP connection must be closed for the process to exit). */
export interface RedisConnection {
  readonly redis: Redis;
  /**
   * The same connection, answering as Redis did. The client otherwise tries `JSON.parse` on every string of every
   * answer, and a string that is not JSON (a stream id, a field name) costs a thrown exception: about 60 µs per cache
   * hit's read, 12× the decoding the reply log does itself (lib/replies/redis-log.ts).
   */
  readonly raw: Redis;
  /** Wakes readers of the shared reply log (lib/replies/redis-log.ts) instead of their polling. */
  readonly subscribe?: Subscribe;
  close(): Promise<void>;
}

/** Opens a TCP connection to `REDIS_URL`: only a platform with sockets can (the Node server). */
export type TcpRedis = (url: string, timeoutMs: number) => RedisConnection;

/**
 * The one Redis builder. Upstash REST works everywhere (it is `fetch`); a `redis://` URL needs the platform's TCP
 * client, and a platform without one (the edge) is told so at startup, naming the variable.
 */
export function connectRedis(
  store: StoreConfig,
  timeoutMs: number,
  tcp: TcpRedis | undefined,
): RedisConnection | undefined {
  if (store.kind === 'memory') return undefined;
  // The store guard (lib/limits/store-guard.ts) decides when the store is down; the clients' own timeouts are only
  // a backstop that frees a call nobody waits for any more, so they must not cut a busy instance's calls short.
  const backstopMs = timeoutMs * STORE_CALL_LIMIT_FACTOR;
  if (store.kind === 'upstash') {
    const options = { ...store, timeoutMs: backstopMs };
    return {
      redis: upstashRestRedis(options),
      raw: upstashRestRedis({ ...options, raw: true }),
      close: async () => {},
    };
  }
  if (!tcp) {
    throw invalid(
      'REDIS_URL',
      'needs a TCP connection, which edge functions cannot open: use Upstash REST (UPSTASH_REDIS_REST_URL/_TOKEN) here',
    );
  }
  return tcp(store.url, backstopMs);
}
