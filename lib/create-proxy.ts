import { type ChatHandler, createChatHandler } from './chat-handler';
import type { Config } from './config';
import { type Internal, internalWith } from './internal';
import type { ClientIp } from './limits/caller-identity';
import { createLimitStores } from './limits/create-stores';
import { createRateLimitGate } from './limits/gate';
import { jsonLogger, type Logger } from './log';
import { connectRedis, type TcpRedis } from './redis/connect';
import { createUpstream } from './upstream/create-upstream';

/**
 * What the platform supplies; everything else is built from the config. The Vercel adapter
 * (lib/platform/vercel.ts) and the Node adapter (server/node-platform.ts) each fill this in, and nothing more.
 */
export interface Platform {
  /** How this platform reports the client address (Vercel's `x-real-ip`, the Node socket...). */
  readonly clientIp: ClientIp;
  /** How to reach a `REDIS_URL` over TCP; absent where sockets are not allowed (the edge). */
  readonly tcpRedis?: TcpRedis;
  /** Keeps background work alive after the response (Vercel's `waitUntil`); by default the promise just runs. */
  readonly waitUntil?: (promise: Promise<unknown>) => void;
  readonly log?: Logger;
  /** Clock, jitter and ids; tests replace them to move time instead of sleeping. */
  readonly _internal?: Partial<Internal>;
}

export interface ChatProxy {
  readonly handler: ChatHandler;
  /** Lets go of what the proxy holds open (the Redis connection), so a server can exit. */
  close(): Promise<void>;
}

/** The one composition root: api/chat.ts (through its adapter), the Node server and the tests all come here. */
export function createProxy(config: Config, platform: Platform): ChatProxy {
  const internal = internalWith(platform._internal);
  const waitUntil = platform.waitUntil ?? ((promise: Promise<unknown>) => void promise.catch(() => {}));
  const { rateLimit } = config;
  const redis = connectRedis(rateLimit.store, rateLimit.redisTimeoutMs, platform.tcpRedis);
  const gate = createRateLimitGate({
    config: rateLimit,
    stores: createLimitStores(rateLimit, redis?.redis, internal.now),
    clientIp: platform.clientIp,
    waitUntil,
    secrets: config.secrets,
    internal,
  });
  const handler = createChatHandler({
    config,
    upstream: createUpstream(config, internal),
    gate,
    waitUntil,
    log: platform.log ?? jsonLogger,
    internal,
  });
  return { handler, close: async () => redis?.close() };
}
