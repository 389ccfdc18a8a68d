import type { Redis } from '@upstash/redis';
import { invalid } from '../config/env';
import type { StoreConfig } from '../config/rate-limit';
import { upstashRestRedis } from './upstash-rest';

/** A Redis client and how to let it go (a TCP connection must be closed for the process to exit). */
export interface RedisConnection {
  readonly redis: Redis;
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
  if (store.kind === 'upstash') {
    return { redis: upstashRestRedis({ ...store, timeoutMs }), close: async () => {} };
  }
  if (!tcp) {
    throw invalid(
      'REDIS_URL',
      'needs a TCP connection, which edge functions cannot open: use Upstash REST (UPSTASH_REDIS_REST_URL/_TOKEN) here',
    );
  }
  return tcp(store.url, timeoutMs);
}
