import { spawn } from 'node:child_process';
import { REDIS_TEST_HOST, REDIS_TEST_PORT } from '../tests/support/redis';

/** What `stop` answers: every command counted, and how many each client connection (`ip:port`) sent. */
export interface Counted {
  readonly total: number;
  readonly byClient: ReadonlyMap<string, number>;
}

/**
 * Counts the commands clients send Redis on keys containing `marker` (`redis-cli monitor`), leaving out what scripts
 * run inside themselves, until `stop` is called.
 */
export async function monitorCommands(marker: string): Promise<{ stop: () => Promise<Counted> }> {
  const child = spawn('redis-cli', ['-h', REDIS_TEST_HOST, '-p', String(REDIS_TEST_PORT), 'monitor']);
  let total = 0;
  const byClient = new Map<string, number>();
  let buffered = '';
  child.stdout.on('data', (data: Buffer) => {
    buffered += data.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes(marker) || line.includes(' lua]')) continue;
      total++;
      const client = /^\S+ \[\d+ (\S+)\]/.exec(line)?.[1] ?? '?';
      byClient.set(client, (byClient.get(client) ?? 0) + 1);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 200)); // MONITOR is on before the first command
  return {
    stop: async () => {
      await new Promise((resolve) => setTimeout(resolve, 300)); // the last commands' lines arrive
      child.kill();
      return { total, byClient };
    },
  };
}
