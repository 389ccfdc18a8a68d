import { connect } from 'node:net';

export interface RawExchange {
  /** Everything the server sent, as text. */
  readonly text: string;
  /** How the connection ended: the server closed it cleanly (FIN), or it was reset (or failed otherwise). */
  readonly end: 'eof' | { readonly error: string };
}

/**
 * One HTTP/1.1 exchange over a bare TCP socket, for what `fetch` hides: how the server ends the connection, and
 * a body that arrives slowly. Writes `head`, then each of `body` every `everyMs` (all at once without it), and
 * resolves when the connection ends, however it ends.
 */
export function rawExchange(
  port: number,
  head: string,
  body: readonly string[] = [],
  everyMs = 0,
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let drip: NodeJS.Timeout | undefined;
    const done = (end: RawExchange['end']) => {
      clearInterval(drip);
      socket.destroy();
      resolve({ text, end });
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('end', () => done('eof'));
    socket.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }));
    socket.write(head);
    if (everyMs === 0) {
      socket.write(body.join(''));
      return;
    }
    const rest = [...body];
    const next = () => {
      const piece = rest.shift();
      if (piece !== undefined && socket.writable) socket.write(piece);
      else clearInterval(drip);
    };
    next();
    drip = setInterval(next, everyMs);
  });
}

/** The request line and headers of a keep-alive JSON POST to the chat endpoint, announcing `length` bytes. */
export function chatPostHead(port: number, length: number, accept = 'text/plain'): string {
  return [
    'POST /api/chat HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Content-Type: application/json',
    `Accept: ${accept}`,
    'Connection: keep-alive',
    `Content-Length: ${length}`,
    '',
    '',
  ].join('\r\n');
}
