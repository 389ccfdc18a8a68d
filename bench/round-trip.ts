import { connect } from 'node:net';
import { type Summary, summarize } from './stats';

/**
 * What one round trip to Redis costs on this machine: `count` PINGs, one at a time on one connection, timed from the
 * write to the answer (ms). Every admission waits for one (the limiter's scripts and the reply log's claim go
 * together), so the floor plus this is the least a proxy limited on Redis can add to the first token at 1 client;
 * on a host where waking a process is slow it is a large part of that target (0.16-0.23 ms p50 on one 2-core VM,
 * where the proxy's three scripts came back after 0.22-0.32 ms). Each PING waits `GAP_MS` after the last answer, as
 * Redis waits between one client's requests: back to back, both processes stay awake and read 0.04 ms there.
 * Undefined if Redis does not answer them all within a second each.
 */
const GAP_MS = 1;

export function redisRoundTrip(url: string, count = 300): Promise<Summary | undefined> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
    socket.setNoDelay(true);
    const samples: number[] = [];
    let sentAt = 0;
    let text = '';
    const done = (summary: Summary | undefined) => {
      socket.destroy();
      resolve(summary);
    };
    const ping = () => {
      text = '';
      sentAt = performance.now();
      socket.write('PING\r\n');
    };
    socket.setTimeout(1_000, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('connect', ping);
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (!text.endsWith('\r\n')) return;
      if (!text.startsWith('+PONG')) return done(undefined);
      samples.push(performance.now() - sentAt);
      if (samples.length < count) setTimeout(ping, GAP_MS);
      else done(summarize(samples));
    });
  });
}
