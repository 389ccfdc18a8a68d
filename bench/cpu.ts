import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

/**
 * Where the machine's CPU goes during a batch: the server measured, the fake upstream, Redis and the bench's own
 * client, each in µs of CPU time (all threads: V8's GC helpers and libuv's pool count too). Requests per second on a
 * shared 2-core host drift with the host's speed from run to run (direct did 5,233 req/s in one run and 7,820 in the
 * next); the CPU a request costs each process drifts far less, and it says whose cost it is: the floor's row is the
 * runtime's, the proxy's excess over it is ours, and Redis's column is what the limiter and the reply log cost the
 * other core.
 */
export interface CpuUse {
  readonly server: number;
  readonly upstream: number;
  readonly redis: number;
  readonly client: number;
}

export interface CpuMeter {
  /** The server's and the fake upstream's pids; Redis by its URL (INFO), the client is this process. */
  readonly server: number | undefined;
  readonly upstream: number | undefined;
  readonly redisUrl: string;
}

/** Runs `work` and says how much CPU each process spent meanwhile (NaN where a reading failed). */
export async function cpuDuring<T>(meter: CpuMeter, work: () => Promise<T>): Promise<[T, CpuUse]> {
  const before = await readAll(meter);
  const result = await work();
  const after = await readAll(meter);
  return [
    result,
    {
      server: after.server - before.server,
      upstream: after.upstream - before.upstream,
      redis: after.redis - before.redis,
      client: after.client - before.client,
    },
  ];
}

export function addCpu(a: CpuUse, b: CpuUse): CpuUse {
  return {
    server: a.server + b.server,
    upstream: a.upstream + b.upstream,
    redis: a.redis + b.redis,
    client: a.client + b.client,
  };
}

async function readAll(meter: CpuMeter): Promise<CpuUse> {
  const usage = process.cpuUsage();
  return {
    server: processCpuMicros(meter.server),
    upstream: processCpuMicros(meter.upstream),
    redis: await redisCpuMicros(meter.redisUrl),
    client: usage.user + usage.system,
  };
}

/**
 * CPU time every live thread of a process has used, µs, from Linux's per-thread `schedstat` (nanoseconds; `stat`'s
 * ticks of 10 ms are too coarse for a batch of a quarter second). NaN where /proc cannot tell.
 */
export function processCpuMicros(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1000;
  } catch {
    return Number.NaN; // not Linux, or a thread ended between the listing and its read
  }
}

/** Redis's own CPU time so far, µs (`INFO cpu`: user + system, all its threads); NaN if it does not answer. */
export function redisCpuMicros(url: string, timeoutMs = 1_000): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
    let text = '';
    const done = (micros: number) => {
      socket.destroy();
      resolve(micros);
    };
    socket.setTimeout(timeoutMs, () => done(Number.NaN));
    socket.on('error', () => done(Number.NaN));
    socket.on('connect', () => socket.write('INFO cpu\r\n'));
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (text.startsWith('-')) return done(Number.NaN); // an error, e.g. NOAUTH
      const head = /^\$(\d+)\r\n/.exec(text); // a bulk string: wait for all of it
      if (!head?.[1] || text.length < head[0].length + Number(head[1])) return;
      const user = /used_cpu_user:([\d.]+)/.exec(text)?.[1];
      const system = /used_cpu_sys:([\d.]+)/.exec(text)?.[1];
      done(user && system ? (Number(user) + Number(system)) * 1e6 : Number.NaN);
    });
  });
}
