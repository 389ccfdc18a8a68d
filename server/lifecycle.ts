import { setFlagsFromString } from 'node:v8';
import type { Server } from 'srvx';
import type { ChatProxy } from '../lib/create-proxy';

/** Node's default is 60 s: a client trickling header bytes could hold a connection that long. */
const HEADERS_TIMEOUT_MS = 10_000;
/**
 * Connections the kernel holds for the server to accept (capped by `net.core.somaxconn`, 4,096 by default on Linux
 * since 5.4). Node's default, 511, overflowed in a burst (5,000 streams opened at once, `npm run bench`): the kernel
 * dropped handshakes, whose clients waited for their retransmission (1 s, then 3 s, 7 s), and reset some whose
 * requests had already been sent (`read ECONNRESET`, 18 to 125 clients a run).
 */
const LISTEN_BACKLOG = 4_096;
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
 * Turns off V8's memory reducer, unless Node was started with `--memory-reducer`. On Node 20, after about 30 s
 * without requests it runs a collection that shrinks the heap (120 to 47 MB committed, the young generation with it),
 * and the next burst pays to grow it back through frequent collections: after 35 s idle, 1,000 requests at 32 clients
 * cost 1,834 then 955 and 846 µs of CPU each against ~570 before (the reply log makes it longer); with the reducer
 * off, 1,002 then 570 and 606. An idle server then keeps the heap its last burst grew (229 MB RSS idle against 129),
 * which that burst needed anyway. Node 24 does not shrink an idle heap this way (303 MB before and after the same
 * idle; 743 µs then 504 without this, 812 then 501 with it). A V8 flag: `NODE_OPTIONS` does not take it, so the
 * server sets it itself rather than asking `npm start` and the Dockerfile to pass it. Node calls a flag set after
 * start-up undefined behaviour in general; this one was measured to hold: the idle RSS stayed at 234 MB (129 MB
 * without it), and no collection shrank the heap while idle (`v8.getHeapSpaceStatistics`, sampled every 100 ms).
 */
export function keepHeapWhenIdle(
  execArgv: readonly string[] = process.execArgv,
  setFlags: (flags: string) => void = setFlagsFromString,
): void {
  // V8 takes `--memory_reducer` and `--memory-reducer=true` as the same flag.
  const asked = execArgv.some((arg) => /^--memory[-_]reducer(=|$)/.test(arg));
  if (!asked) setFlags('--no-memory-reducer');
}

/**
 * The Node http server's own timeouts: keep-alive (`KEEP_ALIVE_MS`), and requests. The handler's `BODY_TIMEOUT_MS`
 * answers a slow body with a JSON 408; Node's `requestTimeout` (whole request, headers included) is the backstop
 * behind it, for bodies nobody reads, so it leaves the handler's deadline room to fire first. Node checks both on
 * `connectionsCheckingInterval` (30 s by default, which would let a slow client overstay by that much).
 */
export function nodeServerOptions(bodyTimeoutMs: number) {
  return {
    keepAliveTimeout: KEEP_ALIVE_MS,
    backlog: LISTEN_BACKLOG,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: HEADERS_TIMEOUT_MS + bodyTimeoutMs + 5_000,
    connectionsCheckingInterval: 1_000,
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
