import { redisSocket } from './processes';
import { type Summary, summarize } from './stats';

/** Between one answer and the next PING: as Redis waits between one client's requests, so both processes may sleep. */
const GAP_MS = 1;

/**
 * What one round trip to Redis costs on this machine: `count` PINGs, one at a time on one connection, timed from the
 * write to the answer (ms). Every admission waits for one (the limiter's scripts and the reply log's claim go
 * together), so the floor plus this is about the least a proxy limited on Redis can add to the first token at 1
 * client; on a host where waking a process is slow it is a large part of that target. PINGs sent back to back keep
 * both processes awake and read faster (about half, on one 2-core VM) than a request's round trip does. Undefined if
 * Redis does not answer them all (each within a second), or closes the connection first.
 */
export function redisRoundTrip(url: string, count = 300): Promise<Summary | undefined> {
  return new Promise((resolve) => {
    const socket = redisSocket(url);
    socket.setNoDelay(true);
    const samples: number[] = [];
    let sentAt = 0;
    let text = '';
    let settled = false;
    const done = (summary: Summary | undefined) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(summary);
    };
    const ping = () => {
      if (settled) return;
      text = '';
      sentAt = performance.now();
      socket.write('PING\r\n');
    };
    socket.setTimeout(1_000, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined)); // after the last answer, `done` has already settled it
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
