import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { REDIS_TEST_HOST, REDIS_TEST_PORT } from './redis';

/**
 * vitest global setup: reuse the redis-server on 127.0.0.1:6379 if one answers PING, else start one (and stop it
 * afterwards). Tests of limits run against real Redis, never a fake, so a missing binary is a clear failure.
 */
export default async function setup(): Promise<() => void> {
  if (await pings()) return () => {};
  const binary = findRedisServer();
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(REDIS_TEST_PORT), '--bind', REDIS_TEST_HOST, '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 10_000;
  while (!(await pings())) {
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`redis-server did not start on ${REDIS_TEST_HOST}:${REDIS_TEST_PORT}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return () => {
    child.kill('SIGTERM');
  };
}

/** The suite never installs anything (.ci/run does); it says what is missing and how to get it, at once. */
function findRedisServer(): string {
  const found = [
    '/usr/bin/redis-server',
    '/usr/local/bin/redis-server',
    '/opt/homebrew/bin/redis-server',
  ].find((path) => existsSync(path));
  if (found) return found;
  throw new Error(
    'The tests need a real Redis: nothing answers on 127.0.0.1:6379 and there is no redis-server to start. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis) or start one on that port.',
  );
}

function pings(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(REDIS_TEST_PORT, REDIS_TEST_HOST, () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
