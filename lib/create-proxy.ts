import { type ChatHandler, createChatHandler } from './chat-handler';
import type { Config } from './config';
import { createPricing, type Pricing } from './cost/pricing';
import { type LoadTokenCounter, lazyTokenCounter } from './history/token-count';
import type { BodyReaderOf } from './http/read-body';
import { type Internal, internalWith } from './internal';
import type { ClientIp } from './limits/caller-identity';
import { createLimitStores } from './limits/create-stores';
import { createRateLimitGate } from './limits/gate';
import { jsonLogger, type Logger } from './log';
import { createRequestTraces } from './observe/request-traces';
import { tracedGate } from './observe/traced-gate';
import { memoryCapacityStore } from './queue/capacity-store';
import { redisCapacityStore } from './queue/redis-capacity';
import { createUpstreamQueue, type UpstreamQueue } from './queue/upstream-queue';
import { connectRedis, type RedisConnection, type TcpRedis } from './redis/connect';
import { createRedisLog } from './replies/redis-log';
import { createReplies, type Replies } from './replies/replies';
import type { Sha256Hex } from './replies/reply-key';
import { createShutdown, type ShutdownHooks } from './shutdown';
import type { StreamResponder } from './stream/reply-stream';
import { createUpstream } from './upstream/create-upstream';
import { createModerationStep } from './upstream/moderation';
import type { Transport } from './upstream/openai-http';

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
  /**
   * Origins this platform knows to be the page's own, besides `PUBLIC_URL`: Vercel's deployment URLs, or the dev
   * server's loopback origins. Configuration, never a request header (DNS rebinding). Lowercase, read on every
   * request, so the Node server can fill the list in once it knows the port it bound.
   */
  readonly ownOrigins?: readonly string[];
  /**
   * A real tokenizer for the history caps (`MAX_INPUT_TOKENS`), loaded on first use; the Node server brings
   * `gpt-tokenizer`. Absent (the edge: a vocabulary is megabytes), a calibrated estimate counts.
   */
  readonly tokenCounter?: LoadTokenCounter;
  /** How reply keys are hashed; by default Web Crypto's SHA-256 (the Node server brings its synchronous one). */
  readonly sha256?: Sha256Hex;
  /** How upstream requests are sent; by default the platform's `fetch` (the Node server brings undici's `request`). */
  readonly upstreamTransport?: Transport;
  /**
   * How a streamed reply becomes a `Response`, where the platform has a cheaper way than a Web stream in the native
   * class (Node: the reply written straight to the socket, in srvx's class).
   */
  readonly streamResponse?: StreamResponder;
  /** How a request's body is read, where the platform has a cheaper way than `req.body` (Node: its request stream). */
  readonly bodyReader?: BodyReaderOf;
  /**
   * How the handler hears that a client left, where the platform has a cheaper way than `req.signal` (Node: its
   * response's `close`, on a signal of our own rather than Node 20's slow one; see lib/upstream/abort.ts).
   */
  readonly clientSignal?: (req: Request) => AbortSignal;
  /** Clock, jitter and ids; tests replace them to move time instead of sleeping. */
  readonly _internal?: Partial<Internal>;
}

export interface ChatProxy {
  readonly handler: ChatHandler;
  /**
   * For a server that is stopping (after it stopped accepting): waits until no request or reply is in flight, or
   * `graceMs` has passed; then ends every reply still open with `server_restarting` in its own protocol (charged and
   * logged as usual), and resolves once they have ended.
   */
  drain(graceMs: number): Promise<void>;
  /** Lets go of what the proxy holds open (the Redis connection), so a server can exit. */
  close(): Promise<void>;
  /** What it holds right now, for a metrics scrape: cheap counts, read on demand, nothing kept per request. */
  readings(): ProxyReadings;
}

export interface ProxyReadings {
  /** Upstream replies streaming: from their first token to their end (queued or moderated requests are not). */
  readonly streams: number;
  /** Requests waiting in the queue for upstream capacity. */
  readonly queued: number;
}

/** The one composition root: api/chat.ts (through its adapter), the Node server and the tests all come here. */
export function createProxy(config: Config, platform: Platform): ChatProxy {
  const internal = internalWith(platform._internal);
  const shutdown = createShutdown();
  const background = platform.waitUntil ?? ((promise: Promise<unknown>) => void promise.catch(() => {}));
  // A drain waits for the charges and log lines of the replies it waited for, so none is lost on the way out.
  const waitUntil = (promise: Promise<unknown>) => {
    const release = shutdown.hold();
    promise.then(release, release);
    background(promise);
  };
  const countTokens = lazyTokenCounter(platform.tokenCounter);
  // Start loading at once, off the request path, so the first conversation does not wait for the vocabulary.
  if (platform.tokenCounter) void countTokens();
  const { rateLimit } = config;
  const redis = connectRedis(rateLimit.store, rateLimit.redisTimeoutMs, platform.tcpRedis);
  // One span per request when an OpenTelemetry SDK is registered; ended by its log line (lib/observe/).
  const traces = createRequestTraces();
  const gate = tracedGate(
    createRateLimitGate({
      config: rateLimit,
      stores: createLimitStores(rateLimit, redis?.redis, internal.now),
      clientIp: platform.clientIp,
      waitUntil,
      secrets: config.secrets,
      internal,
    }),
    traces,
  );
  const queue = queueFor(config, internal, redis);
  const log = platform.log ?? jsonLogger;
  const handler = createChatHandler({
    replies: repliesFor(config, internal, shutdown, redis, platform.sha256),
    config,
    upstream: createUpstream(config, internal, queue, platform.upstreamTransport),
    gate,
    moderate: createModerationStep(config, platform.upstreamTransport),
    waitUntil,
    log: traces.logger(log),
    traces,
    pricing: pricingFor(config, log),
    ownOrigins: platform.ownOrigins ?? [],
    countTokens,
    internal,
    shutdown,
    ...(platform.streamResponse && { streamResponse: platform.streamResponse }),
    ...(platform.bodyReader && { bodyReader: platform.bodyReader }),
    ...(platform.clientSignal && { clientSignal: platform.clientSignal }),
  });
  const tracked: ChatHandler = async (req) => {
    const release = shutdown.hold();
    try {
      return await handler(req);
    } finally {
      release();
    }
  };
  return {
    handler: tracked,
    drain: (graceMs) => shutdown.drain(graceMs),
    close: async () => redis?.close(),
    readings: () => ({ streams: shutdown.streaming(), queued: queue.waiting() }),
  };
}

/** Prices for the cost in the log line and the finish metadata, and for the spend budgets' reservations. */
function pricingFor(config: Config, log: Logger): Pricing {
  const { spend } = config.rateLimit;
  return createPricing({
    cost: config.cost,
    fallbackModels: config.failover.fallbacks.map((f) => f.model),
    spendLimited: spend.budgetMicros > 0 || spend.globalDailyMicros > 0,
    // The platform's logger, so a test collects it with its lines and a benchmark's quiet logger silences it.
    notice: log,
  });
}

/** The reply log, when the cache, coalescing or resume is on; shared across instances through the limiter's Redis. */
function repliesFor(
  config: Config,
  internal: Internal,
  shutdown: ShutdownHooks,
  redis: RedisConnection | undefined,
  sha256: Sha256Hex | undefined,
): Replies | undefined {
  const { replies } = config;
  if (!replies.coalesce && !replies.resume && replies.cacheTtlMs === 0) return undefined;
  return createReplies({
    config: replies,
    systemPrompt: config.systemPrompt,
    tools: config.tools.declared,
    // Under the deployment's prefix like every other key, so deployments sharing one Redis share no replies.
    shared:
      redis &&
      createRedisLog(redis.raw, { prefix: `${config.rateLimit.prefix}:reply`, subscribe: redis.subscribe }),
    shutdown,
    totalTimeoutMs: config.failover.totalTimeoutMs,
    internal,
    secrets: config.secrets,
    sha256,
  });
}

/**
 * The fair queue for upstream capacity: for providers with configured limits (shared across instances through
 * Redis), and for any provider whose headers say to hold off. A provider with neither passes straight through.
 */
function queueFor(config: Config, internal: Internal, redis: RedisConnection | undefined): UpstreamQueue {
  const { rateLimit } = config;
  const store = redis
    ? redisCapacityStore(redis.redis, { prefix: rateLimit.prefix, subscribe: redis.subscribe })
    : memoryCapacityStore(internal.now);
  return createUpstreamQueue({
    config: config.queue,
    store,
    leaseMs: rateLimit.streamLeaseMs,
    pollMs: config.replies.pollMs,
    internal,
  });
}
