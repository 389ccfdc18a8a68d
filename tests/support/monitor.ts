import { connect } from 'node:net';
import { REDIS_TEST_HOST, REDIS_TEST_PORT } from './redis';

export interface Monitor {
  /** Every command a client sent since MONITOR was on, as its arguments (the name first), in the order Redis ran them. */
  readonly commands: string[][];
  /** The client (`ip:port`) that sent each of `commands`, at the same index. */
  readonly clients: string[];
  close(): void;
}

/**
 * Redis's MONITOR on a plain socket, on from the moment this resolves. ioredis's `monitor()` now and then throws
 * "Command queue state error" when output races its own MONITOR reply (seen under load in the tests), so the tests
 * read the protocol themselves: one `+<time> [<db> <client>] "arg" "arg"…` line per command. Commands scripts run
 * inside themselves (`[0 lua]`) are left out: what counts is what a client sent.
 */
export function monitorRedis(): Promise<Monitor> {
  const socket = connect({ host: REDIS_TEST_HOST, port: REDIS_TEST_PORT });
  const commands: string[][] = [];
  const clients: string[] = [];
  let buffered = '';
  return new Promise((resolve, reject) => {
    let on = false;
    socket.on('error', (error) => (on ? undefined : reject(error)));
    socket.on('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('utf8');
      const lines = buffered.split('\r\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!on) {
          if (line !== '+OK') return reject(new Error(`MONITOR answered ${line}`));
          on = true;
          resolve({ commands, clients, close: () => socket.destroy() });
        } else {
          const client = /^\+\S+ \[\d+ (\S+)\]/.exec(line)?.[1] ?? '?';
          if (client === 'lua') continue;
          commands.push(argumentsOf(line));
          clients.push(client);
        }
      }
    });
  });
}

/** The quoted arguments of one MONITOR line, unescaped (`\"`, `\\`, `\n`, `\xNN`…). */
function argumentsOf(line: string): string[] {
  const args: string[] = [];
  for (const match of line.matchAll(/"((?:[^"\\]|\\.)*)"/g)) args.push(unquoted(match[1] ?? ''));
  return args;
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' };

function unquoted(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_all, code: string) => {
    if (code.length === 3) return String.fromCharCode(Number.parseInt(code.slice(1), 16));
    return ESCAPES[code] ?? code;
  });
}
