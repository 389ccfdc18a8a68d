import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterEach } from 'vitest';
import { recordOutput } from './secret-scan';

const running: ChildProcess[] = [];

// Every server a test starts is stopped after it, whole process tree included.
afterEach(() => {
  for (const child of running.splice(0)) {
    if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
  }
});

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** Runs an npm script exactly as a user types it, in its own process group so the whole tree can be stopped. */
export function npmRun(script: 'dev' | 'start', env: Record<string, string>) {
  const { OPENAI_API_KEY: _key, OPENAI_BASE_URL: _url, ...inherited } = process.env;
  const child = spawn('npm', ['run', '--silent', script], {
    env: { ...inherited, ENV_FILE: '/nonexistent/.env', ...env },
    detached: true,
  });
  running.push(child);
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
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}
