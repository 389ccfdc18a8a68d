import { spawn } from 'node:child_process';
import { REDIS_TEST_HOST, REDIS_TEST_PORT } from '../tests/support/redis';

/**
 * Counts the commands clients send Redis on keys containing `marker` (`redis-cli monitor`), leaving out what scripts
 * run inside themselves, until `stop` is called.
 */
export async function monitorCommands(marker: string): Promise<{ stop: () => Promise<number> }> {
  const child = spawn('redis-cli', ['-h', REDIS_TEST_HOST, '-p', String(REDIS_TEST_PORT), 'monitor']);
  let count = 0;
  let buffered = '';
  child.stdout.on('data', (data: Buffer) => {
    buffered += data.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.includes(marker) && !line.includes(' lua]')) count++;
  });
  await new Promise((resolve) => setTimeout(resolve, 200)); // MONITOR is on before the first command
  return {
    stop: async () => {
      await new Promise((resolve) => setTimeout(resolve, 300)); // the last commands' lines arrive
      child.kill();
      return count;
    },
  };
}
