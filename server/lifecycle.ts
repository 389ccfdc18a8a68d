import { performance } from 'node:perf_hooks';
import type { Server } from 'srvx';
import type { ChatProxy } from '../lib/create-proxy';

/** Node's default is 60 s: a client trickling header bytes could hold a connection that long. */
const HEADERS_TIMEOUT_MS = 10_000;
/** Node's default, kept while this process is too busy to read what its clients sent (`loadAwareTimeouts`). */
const HEADERS_TIMEOUT_BUSY_MS = 60_000;
/** Busier than this over a second (the event loop's utilization), the process reads its sockets late. */
const BUSY = 0.9;
/** How long the loop must have been calm before the strict timeouts apply again: every waiting socket was read. */
const CALM_MS = 5_000;
const CHECK_MS = 1_000;
/**
 * How long an idle keep-alive connection stays open. Node's default (5 s) is shorter than the idle timeout of the
 * proxies in front of a deployed server (a load balancer's is typically 60 s; Fly's and Railway's pool connections
 * too): such a proxy would send a request on a connection the server is closing at that instant, and its client would
 * get a 502. Longer than theirs, the proxy always closes first.
 */
const KEEP_ALIVE_MS = 65_000;
/** After the drain: how long the last bytes of the replies get to reach their clients before connections are cut. */
const CLOSE_MS = 1_000;
/** Keep-alive connections that go idle after the drain are closed on this beat. */
const SWEEP_MS = 50;

/**
 * The Node http server's own timeouts: keep-alive (`KEEP_ALIVE_MS`), and requests. The handler's `BODY_TIMEOUT_MS`
 * answers a slow body with a JSON 408; Node's `requestTimeout` (whole request, headers included) is the backstop
 * behind it, for bodies nobody reads, so it leaves the handler's deadline room to fire first. Node checks both on
 * `connectionsCheckingInterval` (30 s by default, which would let a slow client overstay by that much).
 */
export function nodeServerOptions(bodyTimeoutMs: number) {
  return {
    keepAliveTimeout: KEEP_ALIVE_MS,
    ...requestTimeouts(HEADERS_TIMEOUT_MS, bodyTimeoutMs),
    connectionsCheckingInterval: 1_000,
  };
}

function requestTimeouts(headersTimeout: number, bodyTimeoutMs: number) {
  return { headersTimeout, requestTimeout: headersTimeout + bodyTimeoutMs + 5_000 };
}

/** The two timeouts of Node's http server that `loadAwareTimeouts` moves. */
export interface RequestTimeouts {
  headersTimeout: number;
  requestTimeout: number;
}

/**
 * Node's headers and request timeouts run from when a connection was accepted, so they also count the time its bytes
 * waited unread while this process was busy with others. In a burst (5,000 streams opened at once, `npm run bench`)
 * that cut 30 to 125 connections whose requests had long arrived: a 408 and a reset, 10 s in. So while the event loop
 * is saturated, and until it has been calm for `CALM_MS`, the timeouts are Node's defaults; a slow client of a calm
 * server still gets the strict ones. `busy`: the loop's utilization since its last call (0 to 1).
 */
export function loadAwareTimeouts(
  server: RequestTimeouts,
  bodyTimeoutMs: number,
  busy: () => number = loopUtilization(),
  now: () => number = Date.now,
): () => void {
  const strict = requestTimeouts(HEADERS_TIMEOUT_MS, bodyTimeoutMs);
  const lenient = requestTimeouts(HEADERS_TIMEOUT_BUSY_MS, bodyTimeoutMs);
  let busyAt = Number.NEGATIVE_INFINITY;
  const timer = setInterval(() => {
    if (busy() > BUSY) busyAt = now();
    Object.assign(server, now() - busyAt < CALM_MS ? lenient : strict);
  }, CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

function loopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(current, last);
    last = current;
    return utilization;
  };
}

/**
 * On SIGTERM or SIGINT: stop accepting connections, let the replies in flight finish for `graceMs`, end the rest
 * with their protocol's end marker (each charged and logged), close the connections left, let go of Redis, exit 0.
 */
export function stopOnSignal(listening: Server, proxy: ChatProxy, graceMs: number): void {
  const stop = async (signal: NodeJS.Signals) => {
    console.log(`ai-chat-proxy stopping (${signal}): replies in flight have ${graceMs} ms to finish.`);
    const closed = listening.close().catch(() => {}); // resolves once every connection has ended
    await proxy.drain(graceMs);
    await closeConnections(listening, closed);
    await proxy.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * Node keeps a keep-alive connection open after `close()` until its client leaves. Each one is closed once it is
 * idle, that is once its last reply has been written out (cutting it earlier could lose a reply's end marker).
 */
async function closeConnections(listening: Server, closed: Promise<void>): Promise<void> {
  const server = listening.node?.server;
  if (!server || !('closeIdleConnections' in server)) return;
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), SWEEP_MS);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_MS)))]);
  clearInterval(sweep);
  clearTimeout(timer);
  server.closeAllConnections();
}
