import { errors, Redis, type Requester, type UpstashRequest, type UpstashResponse } from '@upstash/redis';
import type { RedisConnection } from '../lib/redis/connect';
import { LuaCompat } from './lua-compat';
import { subscriber } from './redis-subscriber';
import { ReplyError, type RespArg } from './resp-codec';
import { RespConnection } from './resp-connection';

type Reply = UpstashResponse<unknown>;

/**
 * An @upstash/redis client that talks to a plain Redis over TCP (`REDIS_URL`), so the self-hosted server runs
 * the very same limiter code as the edge. Commands go on one lean connection (server/resp-connection.ts); pub/sub
 * holds one of its own (server/redis-subscriber.ts). It implements Upstash's `Requester`: a single command, `/pipeline`
 * and `/multi-exec`, each answered in Upstash's `{ result } | { error }` shape.
 */
export function tcpRedis(url: string, timeoutMs: number): RedisConnection {
  const connectTimeoutMs = Math.max(timeoutMs, 1_000);
  const commands = new RespConnection(new URL(url), { timeoutMs, connectTimeoutMs });
  const lua = new LuaCompat();
  const requester = tcpRequester(commands, lua);
  const channels = subscriber(url, { connectTimeoutMs });
  return {
    redis: new TcpClient(requester, commands, lua, false),
    raw: new TcpClient(requester, commands, lua, true),
    subscribe: channels.subscribe,
    close: async () => {
      commands.close();
      channels.close();
    },
  };
}

/**
 * The @upstash/redis client on TCP, with its scripts sent straight on the connection. Every Redis call on the request
 * path is a script (the limiter's window, the budget's booking and its settling, the reply log's claim and end; also
 * scripts made with `createScript`, which call these two), and the REST client's road for each (a command object
 * serializing every argument, the `Requester`'s `{ result }` answer, LuaCompat rewriting the whole command) cost
 * more than sending it: 2.85 → 2.75 M main-thread instructions per request (bench:instructions). Every other
 * command takes that road still. A script's answer comes as Redis gave it, on both clients: every script here
 * answers numbers or lists of them, which the REST client's guess at JSON leaves as they are, and the reply log's
 * strings are read through `raw` anyway. `raw`: `RedisConnection.raw` (a client built on a `Requester` takes no
 * options, so it sets its own).
 */
class TcpClient extends Redis {
  constructor(
    requester: Requester,
    private readonly connection: Commands,
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
    const argv: RespArg[] = [name, body, keys.length, ...keys];
    for (const arg of args ?? []) argv.push(toArg(arg));
    try {
      return (await this.connection.call(argv)) as T;
    } catch (error) {
      // As the REST client throws it (NOSCRIPT included, which the callers' fallback to EVAL looks for).
      throw error instanceof ReplyError ? new errors.UpstashError(error.message) : error;
    }
  }
}

/** What the requester and the scripts need of a connection (server/resp-connection.ts). */
type Commands = Pick<RespConnection, 'call'>;

export function tcpRequester(connection: Commands, lua = new LuaCompat()): Requester {
  const run = async (command: unknown[]): Promise<Reply> => {
    try {
      const result: unknown = await connection.call(lua.rewrite(command).map(toArg));
      return { result: lua.originalSha(command) ?? result };
    } catch (error) {
      if (error instanceof ReplyError) return { error: error.message };
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
      if (path === 'multi-exec')
        return (await transaction(connection, lua, req.body as unknown[][])) as UpstashResponse<TResult>;
      return (await run(req.body as unknown[])) as UpstashResponse<TResult>;
    },
  };
}

/**
 * MULTI, the commands, EXEC: sent together, so nothing else on the connection comes between them. EXEC answers each
 * command's result, or its error in its place; a command Redis refused to queue fails the whole transaction
 * (EXECABORT), as it does on the REST API.
 */
async function transaction(connection: Commands, lua: LuaCompat, commands: unknown[][]): Promise<Reply[]> {
  // Every argument converted before the first call: a MULTI sent without its EXEC would leave the connection queueing.
  const calls = [['MULTI'], ...commands.map((c) => lua.rewrite(c).map(toArg))];
  const queued = calls.map((args) => connection.call(args));
  const done = connection.call(['EXEC']);
  for (const answer of queued) answer.catch(() => {}); // EXEC's own answer says what failed
  const results = (await done) as unknown[] | null;
  return (results ?? []).map((result) =>
    result instanceof ReplyError ? { error: result.message } : { result },
  );
}

function toArg(value: unknown): RespArg {
  if (typeof value === 'string' || typeof value === 'number' || Buffer.isBuffer(value)) return value;
  return JSON.stringify(value);
}
