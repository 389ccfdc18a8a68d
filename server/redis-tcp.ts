import { errors, Redis, type Requester, type UpstashRequest, type UpstashResponse } from '@upstash/redis';
import IORedis from 'ioredis';
import type { RedisConnection, Subscribe } from '../lib/redis/connect';
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
    // Commands issued in the same tick (a request's limiter script, its reply-log claim, other requests' mirrors)
    // go to Redis in one write instead of one syscall each: +6% requests/s at 32 clients (alternating A/B runs),
    // for about 0.05 ms more on a lone sequential command (it waits for the end of the tick).
    enableAutoPipelining: true,
  });
  connection.on('error', () => {}); // Reconnects on its own; failures surface per command.
  const lua = new LuaCompat();
  const requester = tcpRequester(connection, lua);
  const channels = subscriber(connection);
  return {
    redis: new TcpClient(requester, connection, lua, false),
    raw: new TcpClient(requester, connection, lua, true),
    subscribe: channels.subscribe,
    close: async () => {
      connection.disconnect();
      channels.close();
    },
  };
}

/**
 * The @upstash/redis client on TCP, with its scripts run straight on ioredis. Every Redis call on the request path
 * is a script (the limiter's window, the budget's booking and its settling, the reply log's claim and end; also
 * scripts made with `createScript`, which call these two), and the REST client's road for each (a command object
 * serializing every argument, the `Requester`'s `{ result }` answer, LuaCompat rewriting the whole command) cost
 * more than ioredis's own work: 2.85 → 2.75 M main-thread instructions per request (bench:instructions). Every other
 * command takes that road still. A script's answer comes as Redis gave it, on both clients: every script here
 * answers numbers or lists of them, which the REST client's guess at JSON leaves as they are, and the reply log's
 * strings are read through `raw` anyway. `raw`: `RedisConnection.raw` (a client built on a `Requester` takes no
 * options, so it sets its own).
 */
class TcpClient extends Redis {
  constructor(
    requester: Requester,
    private readonly connection: IORedis,
    private readonly lua: LuaCompat,
    raw: boolean,
  ) {
    super(requester);
    if (raw) this.opts = { automaticDeserialization: false };
  }

  override evalsha = <TArgs extends unknown[], TData = unknown>(
    ...[sha, keys, args]: [sha1: string, keys: string[], args: TArgs]
  ): Promise<TData> => this.script<TData>('evalsha', this.lua.sha(sha), keys, args);

  override eval = <TArgs extends unknown[], TData = unknown>(
    ...[source, keys, args]: [script: string, keys: string[], args: TArgs]
  ): Promise<TData> => this.script<TData>('eval', this.lua.compatible(source), keys, args);

  private async script<T>(name: string, body: string, keys: string[], args: unknown[]): Promise<T> {
    const argv: (string | number | Buffer)[] = [body, keys.length, ...keys];
    for (const arg of args ?? []) argv.push(toArg(arg));
    try {
      return (await this.connection.call(name, argv)) as T;
    } catch (error) {
      // As the REST client throws it (NOSCRIPT included, which the callers' fallback to EVAL looks for).
      throw isReplyError(error) ? new errors.UpstashError(error.message) : error;
    }
  }
}

/**
 * Pub/sub for the shared reply log's and the queue's watchers. A subscribed connection can run no other command, so
 * it is a duplicate of the main one, opened at the first watch and shared by every channel: SUBSCRIBE at a channel's
 * first watcher, UNSUBSCRIBE at its last; a channel that names a pattern is heard through that pattern, subscribed at
 * its first use and kept. Redis's answer to the (P)SUBSCRIBE says when it listens: watchers that asked are told
 * then, or at once if it already did. ioredis resubscribes both by itself after a reconnect. A lost subscription
 * only costs a wake: the watchers still poll, more slowly, and a leader's calls reach it in its next write's answer.
 */
export function subscriber(connection: IORedis): { subscribe: Subscribe; close(): void } {
  let duplicate: IORedis | undefined;
  const channels = new Map<string, Channel>(); // by SUBSCRIBE
  const routed = new Map<string, Channel>(); // by a pattern's PSUBSCRIBE
  const patterns = new Map<string, Promise<unknown>>(); // each pattern's PSUBSCRIBE, answered once it listens
  const open = (): IORedis => {
    if (duplicate) return duplicate;
    const opened = connection.duplicate();
    opened.on('error', () => {});
    opened.on('message', (channel: string, message: string) => wakeAll(channels, channel, message));
    opened.on('pmessage', (_p: string, channel: string, message: string) =>
      wakeAll(routed, channel, message),
    );
    duplicate = opened;
    return opened;
  };
  const listen = (pattern: string): Promise<unknown> => {
    let listening = patterns.get(pattern);
    if (!listening) {
      const asked = open().psubscribe(pattern);
      // Refused (or the connection closed): the next watch asks again, unless a newer PSUBSCRIBE is already out.
      asked.catch(() => patterns.get(pattern) === asked && patterns.delete(pattern));
      patterns.set(pattern, asked);
      listening = asked;
    }
    return listening;
  };
  const subscribe: Subscribe = (name, onMessage, { pattern, onListening } = {}) => {
    const map = pattern ? routed : channels;
    let channel = map.get(name);
    if (!channel) {
      channel = { watchers: new Set(), listening: pattern ? listen(pattern) : open().subscribe(name) };
      channel.listening.catch(() => {});
      map.set(name, channel);
    }
    // Each watch is its own entry, so the same callback watching twice is called twice and removed once per stop.
    const watcher = { wake: onMessage };
    const mine = channel;
    mine.watchers.add(watcher);
    if (onListening)
      mine.listening.then(
        () => mine.watchers.has(watcher) && onListening(),
        () => {},
      );
    return () => {
      if (!mine.watchers.delete(watcher) || mine.watchers.size > 0 || map.get(name) !== mine) return;
      map.delete(name);
      if (!pattern) duplicate?.unsubscribe(name).catch(() => {});
    };
  };
  return {
    subscribe,
    close: () => {
      channels.clear();
      routed.clear();
      patterns.clear();
      duplicate?.disconnect();
      duplicate = undefined;
    },
  };
}

/** A channel's watchers, and its (P)SUBSCRIBE: answered once Redis listens. */
interface Channel {
  readonly watchers: Set<Watcher>;
  readonly listening: Promise<unknown>;
}

interface Watcher {
  readonly wake: (message: string) => void;
}

function wakeAll(map: ReadonlyMap<string, Channel>, name: string, message: string): void {
  for (const watcher of map.get(name)?.watchers ?? []) watcher.wake(message);
}

export function tcpRequester(connection: IORedis, lua = new LuaCompat()): Requester {
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
