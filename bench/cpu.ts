import { readdirSync, readFileSync } from 'node:fs';
import { redisReply } from './processes';

/**
 * The CPU a batch cost the server measured (all its threads: V8's GC helpers and libuv's pool count too) and, for a
 * server that uses it, Redis, each in µs of CPU time. Requests per second on a shared 2-core host drift with the
 * host's speed from run to run (direct did 5,233 req/s in one run and 7,820 in the next); the CPU a request costs
 * drifts far less, and it says whose cost it is: the floor's row is the runtime's, the proxy's excess over it is
 * ours, and Redis's is what the limiter and the reply log cost outside the proxy's process.
 */
export interface CpuUse {
  readonly server: number;
  /** NaN for a target that does not use Redis: `INFO cpu` is the whole server's, its own timers included. */
  readonly redis: number;
}

export interface CpuMeter {
  readonly server: number | undefined;
  /** Only for a target whose limiter and reply log are on Redis. */
  readonly redisUrl?: string;
}

/** Runs `work` and says how much CPU the server and Redis spent meanwhile (NaN where a reading failed). */
export async function cpuDuring<T>(meter: CpuMeter, work: () => Promise<T>): Promise<[T, CpuUse]> {
  const read = async (): Promise<CpuUse> => ({
    server: processCpuMicros(meter.server),
    redis: meter.redisUrl ? await redisCpuMicros(meter.redisUrl) : Number.NaN,
  });
  const before = await read();
  const result = await work();
  const after = await read();
  return [result, { server: after.server - before.server, redis: after.redis - before.redis }];
}

export const addCpu = (a: CpuUse, b: CpuUse): CpuUse => ({
  server: a.server + b.server,
  redis: a.redis + b.redis,
});

/**
 * CPU time the live threads of a process have used, µs, from Linux's per-thread `schedstat` (nanoseconds; `stat`'s
 * ticks of 10 ms are too coarse for a batch of a quarter second). A thread that ends between the listing and its
 * read is skipped (Node's threads live as long as the process). NaN where /proc cannot tell (not Linux).
 */
export function processCpuMicros(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return Number.NaN;
  }
  let ns = 0;
  for (const tid of threads) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1000;
}

/** Redis's own CPU time so far, µs (`INFO cpu`: user + system, all its threads); NaN if it does not answer. */
export async function redisCpuMicros(url: string): Promise<number> {
  const reply = await redisReply(url, 'INFO cpu', (text) => {
    const head = /^\$(\d+)\r\n/.exec(text); // a bulk string: complete once all its bytes are in
    return head?.[1] !== undefined && text.length >= head[0].length + Number(head[1]);
  });
  const user = reply && /used_cpu_user:([\d.]+)/.exec(reply)?.[1];
  const system = reply && /used_cpu_sys:([\d.]+)/.exec(reply)?.[1];
  return user && system ? (Number(user) + Number(system)) * 1e6 : Number.NaN;
}
