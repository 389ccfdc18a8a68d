import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, get, request } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { demoReply } from '../fake-upstream/behaviours';
import { keepHeapWhenIdle } from '../server/lifecycle';
import { batchedStdoutLogger, whileOpen } from '../server/stdout-log';
import { eventually, startHarness, TEST_KEY } from './support/harness';
import { buildServer, builtServer, freePort, npmRun, portIsFree, SERVER_START_MS } from './support/processes';
import { chatPostHead, rawExchange } from './support/raw-http';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';

const h = await startHarness();

async function post(
  port: number,
  content: string,
  accept = 'text/plain',
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify({ messages: [{ role: 'user', content }] }),
    ...(signal ? { signal } : {}),
  });
}

describe('the Node server, started the way a user starts it', () => {
  it('npm run dev without a key says it uses the demo upstream and streams demo replies token by token', async () => {
    const port = await freePort();
    const dev = npmRun('dev', { PORT: String(port) });
    await eventually(() => dev.output().stdout.includes('listening on'), SERVER_START_MS);
    expect(dev.output().stdout).toMatch(/No OPENAI_API_KEY set: using the built-in demo upstream/);
    expect(dev.output().stdout).toMatch(/Rate limits: 20 requests \/ 60 s.* in-memory, this process only/);
    expect(dev.output().stdout).toContain(`http://127.0.0.1:${port}/`);

    const started = performance.now();
    const res = await post(port, 'Hello proxy');
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    if (!reader) throw new Error('no body');
    const decoder = new TextDecoder();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(performance.now() - started);
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toBe(demoReply('Hello proxy'));
    // Streamed, not buffered: tokens arrive spread over the reply, not all at the end.
    expect(arrivals.length).toBeGreaterThan(10);
    expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThan(200);
    await eventually(() => dev.output().stdout.includes('"outcome":"complete"'));
  });
});

describe('the Node server’s metrics and traces', () => {
  it('npm run dev with METRICS_TOKEN and OTEL_EXPORTER_OTLP_ENDPOINT says where both go, and both work', async () => {
    const exported: string[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        if (req.url === '/v1/traces') exported.push(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const { port: collectorPort } = collector.address() as AddressInfo;
    try {
      const port = await freePort();
      const token = 'metrics-token-of-the-dev-server';
      const dev = npmRun('dev', {
        PORT: String(port),
        METRICS_TOKEN: token,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
        OTEL_BSP_SCHEDULE_DELAY: '100', // the SDK's own setting: send batches at once rather than every 5 s
      });
      await eventually(() => dev.output().stdout.includes('listening on'), SERVER_START_MS);
      expect(dev.output().stdout).toContain(`Metrics at http://127.0.0.1:${port}/metrics`);
      expect(dev.output().stdout).toContain(`Traces go to http://127.0.0.1:${collectorPort}/v1/traces`);
      await (await post(port, 'Hello, observed proxy')).text();

      const scrape = (authorization?: string) =>
        fetch(`http://127.0.0.1:${port}/metrics`, authorization ? { headers: { authorization } } : {});
      expect((await scrape()).status).toBe(401);
      const served = 'chat_requests_total{status="200",outcome="complete",model="demo"} 1';
      await eventually(async () => (await (await scrape(`Bearer ${token}`)).text()).includes(served), 5_000);
      await eventually(() => exported.some((body) => body.includes('POST /api/chat')), 10_000);
      expect(exported.join('\n')).toContain('gen_ai.usage.output_tokens');
      expect(exported.join('\n')).not.toContain('observed proxy');
    } finally {
      collector.closeAllConnections();
      collector.close();
    }
  });
});

// One build for every case below; the refusals and the env file need no npm around them.
describe('the built server, started with plain node as in production', () => {
  beforeAll(buildServer);

  it('refuses to run without a key, naming the variable', async () => {
    const start = builtServer({ PORT: String(await freePort()) });
    expect(await start.exited).not.toBe(0);
    expect(start.output().stderr).toContain('OPENAI_API_KEY is required');
  });

  it('reads its settings from an env file', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'acp-env-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, '.env');
    writeFileSync(
      file,
      `OPENAI_API_KEY=${TEST_KEY}\nOPENAI_BASE_URL=${h.fake.url}\nRATE_LIMIT_STORE=memory\nPORT=${port}\n`,
    );
    const start = builtServer({ ENV_FILE: file });
    await eventually(() => start.output().stdout.includes('listening on'), SERVER_START_MS);
    expect(start.output().stdout).toContain('Read settings from .env');
    expect(start.output().stdout).toContain(`127.0.0.1:${port}`);
  });

  it('refuses per-process rate limits unless asked for, naming the variables', async () => {
    const start = builtServer({ PORT: String(await freePort()), OPENAI_API_KEY: TEST_KEY });
    expect(await start.exited).not.toBe(0);
    expect(start.output().stderr).toMatch(
      /RATE_LIMIT_STORE has no shared store: set UPSTASH_REDIS_REST_URL.*REDIS_URL/,
    );
  });
});

/** One `npm start` (the script itself: build, then plain node) serves every case below; the last one stops it. */
describe('npm start', () => {
  let port = 0;
  let start: ReturnType<typeof npmRun>;
  beforeAll(async () => {
    port = await freePort();
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      OPENAI_API_KEY: TEST_KEY,
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'server-model',
      REDIS_URL: REDIS_TEST_URL,
      RATE_LIMIT_PREFIX: `server-test-${process.pid}`,
      MAX_BODY_BYTES: '4096',
      // With attachments off the reader's cap is MAX_BODY_BYTES itself, so an oversized body is cut while it is read.
      ATTACHMENT_TYPES: 'none',
      BODY_TIMEOUT_MS: '300',
      SHUTDOWN_GRACE_MS: '1500',
    };
    start = npmRun('start', env, { keep: true });
    await eventually(() => start.output().stdout.includes('listening on'), SERVER_START_MS);
  });

  it('serves the real upstream, and a client disconnect over HTTP aborts it', async () => {
    expect(start.output().stdout).not.toContain('demo');
    expect(start.output().stdout).toContain('Redis (REDIS_URL, TCP), shared by every instance');

    h.fake.script({ kind: 'reply', text: 'Served by the node server.' });
    const res = await post(port, 'Hi');
    expect(await res.text()).toBe('Served by the node server.');
    expect(h.fake.calls[0]?.body.model).toBe('server-model');

    h.fake.script({ kind: 'stall', afterTokens: 1 });
    const client = new AbortController();
    const streaming = await post(port, 'Hi', 'text/event-stream', client.signal);
    await streaming.body?.getReader().read();
    client.abort();
    await eventually(() => h.fake.calls[1]?.aborted === true);
    const { stdout, stderr } = start.output();
    expect(stdout + stderr).not.toContain(TEST_KEY);
  });

  it('aborts the upstream when the client leaves before the first token (its signal is the server’s own)', async () => {
    h.fake.script({ kind: 'slow-first-token', delayMs: 10_000 });
    const client = new AbortController();
    const pending = post(port, 'Hi', 'text/event-stream', client.signal).catch(() => undefined);
    const calls = h.fake.calls.length;
    await eventually(() => h.fake.calls.length === calls + 1, 5_000);
    const leftAt = performance.now();
    client.abort();
    await pending;
    await eventually(() => h.fake.calls[calls]?.aborted === true, 5_000);
    // Cut for the client leaving, not by the first-token timeout (10 s) or the fake's own delay.
    expect((h.fake.calls[calls]?.abortedAt ?? Number.POSITIVE_INFINITY) - leftAt).toBeLessThan(5_000);
  });

  it('keeps an idle connection open for 65 s, longer than the proxies in front of it keep theirs', async () => {
    const header = await new Promise<string | undefined>((resolve, reject) => {
      const agent = new Agent({ keepAlive: true });
      get({ port, host: '127.0.0.1', path: '/healthz', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          agent.destroy();
          resolve(String(res.headers['keep-alive']));
        });
      }).on('error', reject);
    });
    // Node's default, 5 s, is shorter than a load balancer's idle timeout: it would race it to close, and lose.
    expect(header).toBe('timeout=65');
  });

  it('listens with a backlog of 4,096 (the kernel’s cap), so a burst of connections waits to be accepted', async () => {
    // `ss` shows a listening socket's backlog as its Send-Q; Node's default, 511, dropped handshakes in a burst.
    const cap = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const line = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim();
    const backlog = Number(line.split(/\s+/)[2]);
    expect(backlog).toBe(Math.min(4_096, cap));
  });

  it('sends a reply read whole from the upstream in one write: the read with its first token has its end too', async () => {
    h.fake.script({ kind: 'whole', text: 'One write, end included.', openAfterDone: true });
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] });
    const reads: string[] = [];
    const socket = connect(port, '127.0.0.1');
    onTestFinished(() => void socket.destroy());
    socket.on('data', (data: Buffer) => reads.push(data.toString('utf8')));
    socket.write(`${chatPostHead(port, Buffer.byteLength(body), 'text/event-stream')}${body}`);
    await eventually(() => reads.join('').includes('\r\n0\r\n\r\n'), 10_000);
    // The head, the tokens and the end, in one write (one `writev`); the upstream's body had not even ended.
    const first = reads.find((read) => read.includes('"type":"text-delta"'));
    expect(first).toContain('"type":"finish"');
    expect(first).toMatch(/\r\n0\r\n\r\n$/);
  });

  it('answers a body trickled in at 1 byte per second with 408 once BODY_TIMEOUT_MS has passed', async () => {
    // All 100 bytes would take 100 s to arrive: the answer comes after the first few.
    const trickle = Array.from({ length: 100 }, () => ' ');
    const { text, end } = await rawExchange(port, chatPostHead(port, 100), trickle, 1_000);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"request_timeout"');
    // The rest of the body is still on its way: the connection cannot carry another request, and says so.
    expect(text.toLowerCase()).toContain('connection: close');
    expect(end).toBe('eof');
    expect(h.fake.calls).toHaveLength(0);
    await eventually(() => start.output().stdout.includes('"error_code":"request_timeout"'));
  });

  it('closes a keep-alive connection cleanly after a 413 (connection: close, then EOF, not a reset)', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(8_000) }] });
    const { text, end } = await rawExchange(port, chatPostHead(port, body.length), [body]);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(text.toLowerCase()).not.toContain('keep-alive');
    expect(end).toBe('eof');
  });

  // Last: it stops the server.
  it('on SIGTERM finishes a reply within the grace, ends a stalled one with its end marker, logs both, exits 0', async () => {
    const pid = Number(/ pid=(\d+)/.exec(start.output().stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    h.fake.script(
      { kind: 'stall', afterTokens: 1 },
      { kind: 'slow-first-token', delayMs: 100, text: 'Finished within the grace.' },
    );
    const stalled = await post(port, 'Hi', 'text/event-stream'); // the status is sent with the first token
    const finishing = post(port, 'Hello'); // another prompt: the same one would follow the first reply
    await eventually(() => h.fake.calls.length === 2);
    process.kill(pid, 'SIGTERM'); // the node process itself, not npm around it

    const finished = await finishing;
    expect(await finished.text()).toBe('Finished within the grace.');
    const cut = await stalled.text();
    expect(cut).toContain(
      'data: {"type":"error","errorText":"The server is restarting. Please send your message again."}',
    );
    expect(cut.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(await start.exited).toBe(0);

    const logged = (res: Response) =>
      logLines(start.output().stdout).find((line) => line.request_id === res.headers.get('x-request-id'));
    expect(logged(finished)).toMatchObject({ status: 200, outcome: 'complete' });
    expect(logged(stalled)).toMatchObject({ status: 200, outcome: 'error', error_code: 'server_restarting' });
    expect(await portIsFree(port)).toBe(true);
  });
});

/** The JSON log lines among a server's console output. */
function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A POST with a Host header of our choosing (fetch always sends the real one). */
function postWithHost(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/chat', method: 'POST', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }));
  });
}

describe('the Node server’s own origins and host names', () => {
  it('npm run dev on PORT=0 grants its loopback origins, explains a refused one, and answers a rebound host 421', async () => {
    const dev = npmRun('dev', { PORT: '0' });
    const listening = /listening on http:\/\/127\.0\.0\.1:(\d+)\//;
    await eventually(() => listening.test(dev.output().stdout), 15_000);
    const port = Number(listening.exec(dev.output().stdout)?.[1]);
    const from = (origin: string, method = 'POST') =>
      fetch(`http://127.0.0.1:${port}/api/chat`, {
        method,
        headers: {
          'content-type': 'application/json',
          accept: 'text/plain',
          origin,
          ...(method === 'OPTIONS' ? { 'access-control-request-method': 'POST' } : {}),
        },
        ...(method === 'POST'
          ? { body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }) }
          : {}),
      });
    const page = await from(`http://127.0.0.1:${port}`);
    expect(page.status).toBe(200);
    expect(page.headers.get('access-control-allow-origin')).toBe(`http://127.0.0.1:${port}`);
    await page.text();
    for (const origin of [`http://localhost:${port}`, `http://[::1]:${port}`]) {
      expect((await from(origin, 'OPTIONS')).headers.get('access-control-allow-origin')).toBe(origin);
    }
    const vite = await from('http://localhost:5173');
    expect(vite.status).toBe(403);
    const { message } = ((await vite.json()) as { error: { message: string } }).error;
    expect(message).toMatch(/http:\/\/localhost:5173.*ALLOWED_ORIGINS/);

    // The DNS-rebinding request: a page on attacker.example, whose name now resolves to 127.0.0.1.
    const rebound = await postWithHost(port, {
      host: 'attacker.example:4201',
      origin: 'http://attacker.example:4201',
      'content-type': 'application/json',
    });
    expect(rebound.status).toBe(421);
    expect(rebound.body).toContain('misdirected_request');
  });
});

describe('the Node server’s log writer (server/stdout-log.ts)', () => {
  it('writes the lines of one event-loop turn in one write, in order, errors to stderr, and the rest on flush', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const log = batchedStdoutLogger(
      (text) => out.push(text),
      (text) => err.push(text),
    );
    const line = (n: number, level: 'info' | 'error' = 'info') =>
      ({
        msg: 'chat',
        request_id: `r${n}`,
        level,
        status: 200,
        outcome: 'complete',
        duration_ms: n,
      }) as const;
    log(line(1));
    log(line(2, 'error'));
    log(line(3));
    expect(out).toEqual([]); // nothing blocks the turn that logs
    await new Promise((resolve) => setImmediate(resolve));
    expect(out).toEqual([`${JSON.stringify(line(1))}\n${JSON.stringify(line(3))}\n`]);
    expect(err).toEqual([`${JSON.stringify(line(2, 'error'))}\n`]);
    log(line(4));
    log.flush(); // what the process does on its way out
    expect(out[1]).toBe(`${JSON.stringify(line(4))}\n`);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out).toHaveLength(2);
  });
});

describe('a log stream that fails (server/stdout-log.ts)', () => {
  it('drops its lines from then on instead of letting its error end the process, and says why once', async () => {
    let written = '';
    const broken = new Writable({
      write(chunk, _encoding, callback) {
        written += String(chunk);
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })); // its reader went away
      },
    });
    const notes: string[] = [];
    const write = whileOpen(broken, (error) => notes.push(error.message));
    write('first\n');
    await new Promise((resolve) => setImmediate(resolve)); // the error is emitted after the write returns
    write('second\n');
    await new Promise((resolve) => setImmediate(resolve));
    expect(written).toBe('first\n');
    expect(notes).toEqual(['write EPIPE']);
  });
});

describe('the Node server’s heap (server/lifecycle.ts)', () => {
  it('turns V8’s memory reducer off, unless node was started with --memory-reducer', () => {
    const set: string[] = [];
    keepHeapWhenIdle(['--enable-source-maps'], (flags) => set.push(flags));
    keepHeapWhenIdle(['--enable-source-maps', '--memory-reducer'], (flags) => set.push(flags));
    keepHeapWhenIdle(['--memory_reducer=true'], (flags) => set.push(flags));
    keepHeapWhenIdle(['--memory-reducer-for-small-heaps'], (flags) => set.push(flags));
    expect(set).toEqual(['--no-memory-reducer', '--no-memory-reducer']);
  });
});

/**
 * What a request leaves to the old generation, read from V8's own account of its young-generation collections
 * (`--trace-gc-nvp`: bytes promoted per scavenge). A request's objects die with it, so almost nothing should be
 * promoted; but two things kept them alive past every scavenge until a full collection, whatever their lifetime: an
 * object literal with a getter (V8 keeps the getter where scavenges cannot free it) and a long-lived `Map` or `Set` of
 * things in flight (the tables it leaves hold their entries; see lib/in-flight.ts; with the response cache on, the
 * replies whose end is on its way to Redis were such a `Map`'s). With either, a request promoted 5-7 KB (that cache:
 * 1.2-1.4 KB); without, 0.1-0.25 (Node 20 and 24). Counted in bytes, not time: scavenges come with allocation, so a
 * busy machine changes when they happen, not what survives them (a request lasts a few requests' allocations, a
 * scavenge ~90: the young generation is fixed at 16 MB).
 */
describe('the built server, under --trace-gc-nvp', () => {
  beforeAll(buildServer);

  it.each([
    ['', {}],
    [' and the response cache', { CACHE_TTL: '10 m' }],
  ])(
    'promotes almost nothing of a request to the old generation, with the reply log and the limiter on Redis%s',
    // Once in about 30 windows of the final build's server (each of 1,200 requests, by hand, apart from this test), a
    // process promoted everything, 7.3 KB a request, from some cause not found: a fresh server is asked once more.
    // What this test is for, a getter literal or a `Map` of requests in flight, promotes 5-8 KB in every window.
    { timeout: 120_000, retry: 1 },
    async (_, cache) => {
      const port = await freePort();
      const server = builtServer(
        {
          ...cache,
          PORT: String(port),
          OPENAI_API_KEY: TEST_KEY,
          OPENAI_BASE_URL: h.fake.url,
          RATE_LIMIT_STORE: 'redis',
          REDIS_URL: REDIS_TEST_URL,
          RATE_LIMIT_PREFIX: uniquePrefix('promotion'),
          RATE_LIMIT_REQUESTS: '1000000',
          TOKEN_BUDGET: '1000000000',
          MAX_STREAMS_PER_CALLER: '1000000',
        },
        ['--trace-gc-nvp', '--min-semi-space-size=16'],
      );
      await eventually(() => server.output().stdout.includes('listening on'), SERVER_START_MS);
      let asked = 0;
      const load = async (until: number) => {
        const client = async () => {
          while (asked < until) {
            const res = await post(port, `What promotes? (${asked++})`, 'text/event-stream');
            expect(res.status).toBe(200);
            expect(await res.text()).toContain('"type":"finish"');
          }
        };
        await Promise.all(Array.from({ length: 8 }, client));
      };
      await load(400); // the young generation grows, the code warms up
      const from = server.output().stdout.length;
      await load(1_600); // 1,200 more, each asking something new (with the cache on, none a hit)
      const scavenges = server
        .output()
        .stdout.slice(from)
        .split('\n')
        .filter((l) => /\bgc=s\b/.test(l));
      const promoted = scavenges.reduce((sum, l) => sum + Number(/\bpromoted=(\d+)/.exec(l)?.[1] ?? 0), 0);
      expect(scavenges.length).toBeGreaterThan(5); // enough of them to read: about one every 90 requests
      expect(promoted / 1_200).toBeLessThan(768);
    },
  );
});
