import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setPriority } from 'node:os';
import { readText, sendJson } from '../../fake-upstream/http';
import { tcpRequester } from '../../server/redis-tcp';
import { RespConnection } from '../../server/resp-connection';
import { REDIS_TEST_URL } from './redis';
import { SECRETS } from './secret-scan';

export interface UpstashBridge {
  readonly url: string;
  readonly token: string;
  /** `hang` accepts requests and never answers: a Redis that is up but stuck. */
  setMode(mode: 'normal' | 'hang'): void;
  readonly requests: { count: number };
  close(): Promise<void>;
}

/**
 * A loopback server that speaks Upstash's REST protocol over a real redis-server, so the real @upstash/redis HTTP
 * client code runs in tests: single commands, `/pipeline`, `/multi-exec`, bearer auth and `Upstash-Encoding: base64`.
 * Commands run through the same Requester the Node server uses for REDIS_URL, including its Lua shebang fix.
 */
export async function startUpstashBridge(token: string = SECRETS.bridgeToken): Promise<UpstashBridge> {
  const connection = new RespConnection(new URL(REDIS_TEST_URL), {
    timeoutMs: 10_000,
    connectTimeoutMs: 2_000,
  });
  const requester = tcpRequester(connection);
  let mode: 'normal' | 'hang' = 'normal';
  const requests = { count: 0 };
  const server = createServer((req, res) => {
    requests.count++;
    if (mode === 'hang') return;
    handle(req, res).catch((error: unknown) => sendJson(res, 500, { error: String(error) }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== `Bearer ${token}`) return sendJson(res, 401, { error: 'Unauthorized' });
    const body = JSON.parse(await readText(req)) as unknown;
    const path = (req.url ?? '/').split('?')[0]?.replace(/^\/+|\/+$/g, '') ?? '';
    if (path !== '' && path !== 'pipeline' && path !== 'multi-exec')
      return sendJson(res, 404, { error: `unknown path /${path}` });
    const reply = await requester.request({ ...(path ? { path: [path] } : {}), body });
    const base64 = req.headers['upstash-encoding'] === 'base64';
    const encoded = base64 ? encode(reply) : reply;
    const failed = !Array.isArray(reply) && typeof reply.error === 'string';
    sendJson(res, failed ? 400 : 200, encoded);
  }

  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    setMode: (next) => {
      mode = next;
    },
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      connection.close();
    },
  };
}

/** Upstash base64-encodes every string inside `result`, at any depth, when asked to. */
function encode(reply: unknown): unknown {
  if (Array.isArray(reply)) return reply.map(encode);
  if (reply && typeof reply === 'object' && 'result' in reply)
    return { ...reply, result: encodeValue(reply.result) };
  return reply;
}

function encodeValue(value: unknown): unknown {
  if (typeof value === 'string') return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(encodeValue);
  return value;
}

export interface BridgeProcess {
  readonly url: string;
  readonly token: string;
  /** Stops the process: from now on every call to `url` is refused, as when the store goes down. */
  close(): Promise<void>;
}

/** Starts the bridge in a child process (tests/support/upstash-bridge-main.ts) and waits for its address. */
export async function startUpstashBridgeProcess(token: string = SECRETS.bridgeToken): Promise<BridgeProcess> {
  const main = new URL('./upstash-bridge-main.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { ...process.env, BRIDGE_TOKEN: token },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  aheadOfTheLoad(child.pid);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /BRIDGE (\S+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`the bridge process exited (${code}) before it listened`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    url,
    token,
    close: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Upstash is a remote service in production, never short of CPU because of ours. Here its stand-in shares the
 * machine with the tests under load (CI runs the suite beside other work): one clean-clone run saw a burst's last
 * call go unanswered past the 300 ms store timeout, which failed it over. Where the OS allows it (root), the stand-in
 * runs at a higher priority than the load, as a remote store would; elsewhere at the same.
 */
function aheadOfTheLoad(pid: number | undefined): void {
  try {
    if (pid !== undefined) setPriority(pid, -10);
  } catch {
    // not permitted (not root): the default priority
  }
}
