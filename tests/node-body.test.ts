import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BodyReader } from '../lib/http/read-body';
import { nodeBodyReader } from '../server/node-body';

/**
 * The Node server's body reader (server/node-body.ts) on a real `node:http` server: what srvx hands the handler is
 * stood in for by a request carrying `runtime.node.req`, as srvx's does. The handler's own limits and deadline
 * (lib/http/read-body.ts) run on top of it in tests/server.test.ts, against `npm start`.
 */
let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** A server whose handler gets the reader for each request; resolves with its port. */
async function serve(handle: (reader: BodyReader, res: ServerResponse) => void): Promise<number> {
  const listening = createServer((incoming: IncomingMessage, res) => {
    const req = { method: incoming.method, runtime: { node: { req: incoming } } } as unknown as Request;
    const reader = nodeBodyReader(req);
    if (!reader) throw new Error('expected a reader');
    handle(reader, res);
  });
  server = listening;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  return (listening.address() as AddressInfo).port;
}

async function readAll(reader: BodyReader): Promise<string> {
  const chunks: Buffer[] = [];
  for (let chunk = await reader.read(); chunk; chunk = await reader.read()) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

/** Sends `parts` one after the other (a later part only once the server asks for more), and reads the answer. */
function post(port: number, parts: readonly string[], gapMs = 0): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    const send = (index: number) => {
      if (index === parts.length) return req.end();
      req.write(parts[index]);
      setTimeout(() => send(index + 1), gapMs);
    };
    send(0);
  });
}

describe('the Node body reader (server/node-body.ts)', () => {
  it('reads a body that came whole, and one that comes in pieces over time, byte for byte', async () => {
    const port = await serve((reader, res) => {
      void readAll(reader).then((text) => res.end(text));
    });
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'héllo 👋' }] });
    expect(await post(port, [body])).toEqual({ status: 200, text: body });
    const pieces = ['{"messages":', '[{"role":"user",', '"content":"slowly"}]}'];
    expect(await post(port, pieces, 30)).toEqual({ status: 200, text: pieces.join('') });
  });

  it('cancel ends a read that waits, and the connection can still carry the answer', async () => {
    const port = await serve((reader, res) => {
      void (async () => {
        const first = await reader.read(); // the first piece; the rest never comes in time
        const pending = reader.read();
        setTimeout(() => reader.cancel(), 50);
        const after = await pending;
        res.end(`${Buffer.from(first ?? []).toString()}|${after === undefined ? 'ended' : 'more'}`);
      })();
    });
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/' });
    const answer = new Promise<string>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
    });
    req.write('{"messages":');
    expect(await answer).toBe('{"messages":|ended');
    req.destroy();
  });

  it('rejects a read when the client breaks off mid-upload', async () => {
    let outcome: Promise<string> | undefined;
    const port = await serve((reader) => {
      outcome = readAll(reader).then(
        () => 'read to the end',
        () => 'rejected',
      );
    });
    const req = request({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/',
      headers: { 'content-length': '100' },
    });
    req.on('error', () => {});
    req.write('{"messages":');
    await expect.poll(() => outcome !== undefined).toBe(true);
    req.destroy();
    expect(await outcome).toBe('rejected');
  });

  it('leaves a body something else already reads alone: the handler then reads req.body', async () => {
    let answer: string | undefined;
    const listening = createServer((incoming, res) => {
      incoming.resume(); // another reader (srvx's web stream, a framework) has it flowing
      const req = { method: 'POST', runtime: { node: { req: incoming } } } as unknown as Request;
      answer = nodeBodyReader(req) === undefined ? 'left alone' : 'taken';
      res.end();
    });
    server = listening;
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    await post((listening.address() as AddressInfo).port, ['{}']);
    expect(answer).toBe('left alone');
  });
});
