import { Redis, type Requester, type UpstashRequest, type UpstashResponse } from '@upstash/redis';
import IORedis from 'ioredis';
import type { RedisConnection } from '../lib/redis/connect';
import { LuaCompat } from './lua-compat';

type Reply = UpstashResponse<unknown>;

/**
 * An @upstash/redis client that talks to a plain Redis over TCP (`REDIS_URL`), so the self-hosted server runs
 * the very same limiter code as the edge. It implements Upstash's `Requester`: a single command, `/pipeline`
 * and `/multi-exec`, each answered in Upstash's `{ result } | { error }` shape.
 */
export function tcpRedis(url: string, timeoutMs: number): RedisConnection {
  const connection = new IORedis(url, {
    // Fail fast instead of queueing forever while Redis is down: the limiter's fail-open/closed policy decides.
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1_000),
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    lazyConnect: false,
  });
  connection.on('error', () => {}); // Reconnects on its own; failures surface per command.
  const requester = tcpRequester(connection);
  return {
    redis: new Redis(requester),
    close: async () => {
      connection.disconnect();
    },
  };
}

export function tcpRequester(connection: IORedis): Requester {
  const lua = new LuaCompat();
  const run = async (command: unknown[]): Promise<Reply> => {
    const [name, ...args] = lua.rewrite(command);
    try {
      const result: unknown = await connection.call(String(name), ...args.map(toArg));
      return { result: lua.originalSha(command) ?? result };
    } catch (error) {
      if (isReplyError(error)) return { error: error.message };
      throw error;
    }
  };
  return {
    async request<TResult>(req: UpstashRequest): Promise<UpstashResponse<TResult>> {
      const path = req.path?.[0];
      if (path === 'pipeline') {
        const commands = req.body as unknown[][];
        return (await Promise.all(commands.map(run))) as UpstashResponse<TResult>;
      }
      if (path === 'multi-exec') {
        const commands = (req.body as unknown[][]).map((c) => lua.rewrite(c));
        const results = await connection
          .multi(commands.map(([name, ...args]) => [String(name), ...args.map(toArg)]))
          .exec();
        return (results ?? []).map(([error, result]) =>
          error ? { error: error.message } : { result },
        ) as UpstashResponse<TResult>;
      }
      return (await run(req.body as unknown[])) as UpstashResponse<TResult>;
    },
  };
}

function toArg(value: unknown): string | number | Buffer {
  if (typeof value === 'string' || typeof value === 'number' || Buffer.isBuffer(value)) return value;
  return JSON.stringify(value);
}

function isReplyError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'ReplyError';
}
