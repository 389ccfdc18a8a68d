import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, afterEach } from 'vitest';
import { recordOutput } from './secret-scan';

const running: ChildProcess[] = [];
const shared: ChildProcess[] = [];

const stop = (child: ChildProcess) => {
  if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
};

// Every server a test starts is stopped after it, whole process tree included; one a `beforeAll` started for
// several tests (`keep`), after the file.
afterEach(() => running.splice(0).forEach(stop));
afterAll(() => shared.splice(0).forEach(stop));

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** True if something can listen on `port` now: the server that had it has let go of it. */
export async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  const listened = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (listened) await new Promise((resolve) => server.close(resolve));
  return listened;
}

/**
 * How long a server a test starts may take to say it is listening. A wait, not a measurement: `npm run dev` on a
 * fresh clone (tsx compiling every source with an empty cache) while the fast tests load both cores has taken over
 * 15 s in CI; it normally takes 1-3 s, and one that never starts still fails.
 */
export const SERVER_START_MS = 45_000;

/** Runs an npm script exactly as a user types it, in its own process group so the whole tree can be stopped. */
export function npmRun(
  script: 'dev' | 'start',
  env: Record<string, string>,
  options: { keep?: boolean } = {},
) {
  return track(spawn('npm', ['run', '--silent', script], spawnOptions(env)), options);
}

/** Bundles the server into dist/server.mjs, as `npm start` does first (`prestart`). */
export async function buildServer(): Promise<void> {
  const build = track(spawn('npm', ['run', '--silent', 'build'], spawnOptions({})));
  if ((await build.exited) !== 0) throw new Error(`npm run build failed:\n${build.output().stderr}`);
}

/** The built server started with plain node, as in production: fast, once `buildServer` has run. */
export function builtServer(env: Record<string, string>, nodeFlags: readonly string[] = []) {
  return track(spawn(process.execPath, [...nodeFlags, 'dist/server.mjs'], spawnOptions(env)));
}

function spawnOptions(env: Record<string, string>) {
  const { OPENAI_API_KEY: _key, OPENAI_BASE_URL: _url, ...inherited } = process.env;
  return { env: { ...inherited, ENV_FILE: '/nonexistent/.env', ...env }, detached: true };
}

function track(child: ChildProcess, options: { keep?: boolean } = {}) {
  (options.keep ? shared : running).push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    recordOutput(d.toString());
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    recordOutput(d.toString());
  });
  // `close`, not `exit`: by then everything the process wrote has been read.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}
