import { request } from 'node:http';
import { Writable } from 'node:stream';
import { type Server, serve } from 'srvx';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { clientClosed } from '../lib/errors';
import { ReplyBody, type StreamEnd } from '../lib/stream/reply-stream';
import { textFraming } from '../lib/stream/text-framing';
import { type Destination, nodeStreamResponse, writeReply } from '../server/reply-pipe';
import { eventually } from './support/harness';

/**
 * The Node server's way to stream a reply (server/reply-pipe.ts): the body written straight to the response, not
 * through a Web stream. On a real srvx server, and against a destination the test controls (for backpressure).
 */

/** A reply whose tokens the test hands over one by one, and what the body did with it. */
function handedReply(onEnd: (end: StreamEnd) => void = () => {}) {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let reads = 0;
  let returned = false;
  const tokens: AsyncIterableIterator<string> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      reads++;
      for (;;) {
        const token = queue.shift();
        if (token !== undefined) return { done: false, value: token };
        if (done || returned) return { done: true, value: undefined };
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    async return() {
      returned = true;
      wake?.();
      return { done: true, value: undefined };
    },
  };
  const ends: StreamEnd[] = [];
  let aborted = false;
  const body = new ReplyBody({ tokens, outcome: { deltas: 0 } }, textFraming(false), {
    abort: () => {
      aborted = true;
    },
    onEnd: (end) => {
      ends.push(end);
      onEnd(end);
    },
  });
  return {
    body,
    give: (...more: string[]) => {
      queue.push(...more);
      wake?.();
    },
    finish: () => {
      done = true;
      wake?.();
    },
    seen: () => ({ reads, returned, aborted, ends }),
  };
}

let server: Server | undefined;
afterEach(async () => {
  await server?.close(true);
  server = undefined;
  vi.restoreAllMocks();
});

/** Whether anything read a body as a Web stream: the Node path writes to the socket without one. */
const webReads = () => vi.spyOn(ReplyBody.prototype, 'readable');

async function serving(body: ReplyBody): Promise<number> {
  server = await serve({
    fetch: () => nodeStreamResponse(body, { status: 200, headers: { 'x-test': 'yes' } }),
    port: 0,
    hostname: '127.0.0.1',
    silent: true,
  }).ready();
  return Number(new URL(server.url ?? '').port);
}

/** A GET whose response text is collected as it comes; `leave` closes the connection mid-stream. */
function get(port: number) {
  let text = '';
  let headers: Record<string, unknown> = {};
  let ended = false;
  const req = request({ port, host: '127.0.0.1', path: '/' }, (res) => {
    headers = res.headers;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      text += chunk;
    });
    res.on('end', () => {
      ended = true;
    });
  });
  req.on('error', () => {});
  req.end();
  return { text: () => text, headers: () => headers, ended: () => ended, leave: () => req.destroy() };
}

describe('a reply written straight to the Node response (server/reply-pipe.ts)', () => {
  it('sends each token as it arrives, with the headers, and ends the response after the last', async () => {
    const { body, give, finish, seen } = handedReply();
    const web = webReads();
    const client = get(await serving(body));
    give('Hel');
    await eventually(() => client.text() === 'Hel');
    expect(client.headers()).toMatchObject({ 'x-test': 'yes' });
    expect(client.ended()).toBe(false);
    give('lo');
    await eventually(() => client.text() === 'Hello');
    finish();
    await eventually(() => client.ended());
    expect(client.text()).toBe('Hello');
    expect(seen().ends).toEqual([{ kind: 'complete' }]);
    expect(web).not.toHaveBeenCalled();
  });

  it('a Response something read as a Web one first is sent from that one stream: no token goes astray', async () => {
    const { body, give, finish } = handedReply();
    server = await serve({
      fetch: () => {
        const res = nodeStreamResponse(body, { status: 200, headers: {} });
        expect(res.bodyUsed).toBe(false); // read through the Web side: its stream now holds the body
        return res;
      },
      port: 0,
      hostname: '127.0.0.1',
      silent: true,
    }).ready();
    const client = get(Number(new URL(server.url ?? '').port));
    give('one ', 'two');
    await eventually(() => client.text() === 'one two');
    finish();
    await eventually(() => client.ended());
    expect(client.text()).toBe('one two');
  });

  it("ends the response after the last token even if the reply's end hook fails", async () => {
    const { body, give, finish } = handedReply((end) => {
      if (end.kind === 'complete') throw new Error('a bug in the charge');
    });
    const out = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const writing = writeReply(body, out as unknown as Destination);
    give('a');
    finish();
    await writing;
    expect(out.writableEnded).toBe(true);
  });

  it('a client that leaves mid-reply aborts it: the upstream is let go and the end is a cancel', async () => {
    const { body, give, seen } = handedReply();
    const web = webReads();
    const client = get(await serving(body));
    give('first');
    await eventually(() => client.text() === 'first');
    client.leave();
    await eventually(() => seen().returned);
    expect(seen().aborted).toBe(true);
    expect(seen().ends).toEqual([{ kind: 'cancelled' }]);
    expect(web).not.toHaveBeenCalled();
  });

  it('a client gone before the reply was ready: the reply is cancelled, never written', async () => {
    const { body, seen } = handedReply();
    let gone: () => void = () => {};
    const left = new Promise<void>((resolve) => {
      gone = resolve;
    });
    server = await serve({
      // Answers only once its client has left (as a reply whose first token came too late).
      fetch: async (req) => {
        req.signal.addEventListener('abort', () => gone());
        await left;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return nodeStreamResponse(body, { status: 200, headers: {} });
      },
      port: 0,
      hostname: '127.0.0.1',
      silent: true,
    }).ready();
    const client = get(Number(new URL(server.url ?? '').port));
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.leave();
    await eventually(() => seen().returned);
    expect(seen().aborted).toBe(true);
    expect(seen().ends).toEqual([{ kind: 'cancelled' }]);
  });

  it('read as a Web Response instead (a test, a framework), a cancel reaches the reply though no token is coming', async () => {
    const { body, give, seen } = handedReply();
    const res = nodeStreamResponse(body, { status: 200, headers: { 'x-test': 'yes' } });
    expect(res.headers.get('x-test')).toBe('yes');
    const reader = res.body?.getReader();
    give('only');
    expect(new TextDecoder().decode((await reader?.read())?.value)).toBe('only');
    // A read is waiting for the next token (as any client reading on does) when the client leaves.
    const waiting = reader?.read();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await reader?.cancel();
    expect((await waiting)?.done).toBe(true);
    await eventually(() => seen().returned);
    expect(seen().ends).toEqual([{ kind: 'cancelled' }]);
  });

  it('reads the next token only once the response drains', async () => {
    const { body, give, finish, seen } = handedReply();
    const written: string[] = [];
    let release: (() => void) | undefined;
    // A destination that is full after every write until the test lets it drain.
    const out = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        written.push(chunk.toString());
        release = callback;
      },
    });
    const writing = writeReply(body, out as unknown as Destination);
    give('a');
    await eventually(() => written.length === 1);
    give('b');
    // `a` is still in the destination: the body waits for `drain` before it asks for `b`.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen().reads).toBe(1);
    expect(written).toEqual(['a']);
    release?.();
    await eventually(() => written.length === 2);
    expect(written).toEqual(['a', 'b']);
    finish();
    release?.();
    await writing;
    expect(seen().ends).toEqual([{ kind: 'complete' }]);
  });

  it('a reply whose reader left (the shared reply was stopped under it) cuts the response', async () => {
    const ends: StreamEnd[] = [];
    const tokens: AsyncIterableIterator<string> = {
      [Symbol.asyncIterator]() {
        return this;
      },
      next: () => Promise.reject(clientClosed()),
    };
    const body = new ReplyBody({ tokens, outcome: { deltas: 0 } }, textFraming(false), {
      abort: () => {},
      onEnd: (end) => ends.push(end),
    });
    const out = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await writeReply(body, out as unknown as Destination);
    expect(out.destroyed).toBe(true);
    expect(ends).toEqual([{ kind: 'cancelled' }]);
  });
});
