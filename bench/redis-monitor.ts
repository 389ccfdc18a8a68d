import { setTimeout as sleep } from 'node:timers/promises';
import { monitorRedis } from '../tests/support/monitor';

/** What `stop` answers: every command counted, and how many each client connection (`ip:port`) sent. */
export interface Counted {
  readonly total: number;
  readonly byClient: ReadonlyMap<string, number>;
}

/**
 * Counts the commands clients send Redis on keys containing `marker` (MONITOR, as the tests read it), leaving out what
 * scripts run inside themselves, until `stop` is called.
 */
export async function monitorCommands(marker: string): Promise<{ stop: () => Promise<Counted> }> {
  const monitor = await monitorRedis();
  return {
    stop: async () => {
      await sleep(300); // the last commands' lines arrive
      monitor.close();
      const byClient = new Map<string, number>();
      let total = 0;
      monitor.commands.forEach((args, index) => {
        if (!args.some((arg) => arg.includes(marker))) return;
        const client = monitor.clients[index] ?? '?';
        total++;
        byClient.set(client, (byClient.get(client) ?? 0) + 1);
      });
      return { total, byClient };
    },
  };
}
