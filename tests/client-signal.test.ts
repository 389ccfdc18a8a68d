import { type Server, serve } from 'srvx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeClientSignal } from '../server/client-signal';
import { eventually } from './support/harness';

/** The Node server's "the client left" (server/client-signal.ts), held to what srvx's `req.signal` says. */
describe('nodeClientSignal', () => {
  const seen: AbortSignal[] = [];
  let server: Server;
  beforeAll(async () => {
    server = await serve({
      port: 0,
      hostname: '127.0.0.1',
      silent: true,
      fetch: (req) => {
        seen.push(nodeClientSignal(req));
        if (new URL(req.url).pathname === '/done') return new Response('ok');
        return new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode('a')) }));
      },
    }).ready();
  });
  afterAll(() => server.close(true));

  it('stays quiet for a response that ended, and is not a platform AbortSignal (Node 20 builds those slowly)', async () => {
    const res = await fetch(new URL('/done', server.url));
    expect(await res.text()).toBe('ok');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const signal = seen.at(-1);
    expect(signal?.aborted).toBe(false);
    expect(signal).not.toBeInstanceOf(AbortSignal);
  });

  it('aborts, with the request’s error as srvx’s own does, when the client leaves before the response ended', async () => {
    const client = new AbortController();
    const res = await fetch(new URL('/open', server.url), { signal: client.signal });
    await res.body?.getReader().read();
    const signal = seen.at(-1);
    expect(signal?.aborted).toBe(false);
    client.abort();
    await eventually(() => signal?.aborted === true);
    expect(signal?.reason).toBeInstanceOf(Error); // Node's `aborted` (ECONNRESET) on the request
  });

  it('starts aborted for a client already gone: its response closed, or its request failed', () => {
    const through = (req: object, res: object) => ({ runtime: { node: { req, res } } }) as unknown as Request;
    const open = { destroyed: false, writableEnded: false, once: () => {} };
    const closed = nodeClientSignal(through({ complete: true }, { ...open, destroyed: true }));
    expect(closed.aborted).toBe(true);
    const failure = new Error('aborted');
    const failed = nodeClientSignal(through({ errored: failure }, open));
    expect(failed.reason).toBe(failure);
    expect(nodeClientSignal(through({ complete: true }, open)).aborted).toBe(false);
  });

  it('is the request’s own signal for a request that did not come through srvx’s Node adapter', () => {
    const req = new Request('http://localhost/');
    expect(nodeClientSignal(req)).toBe(req.signal);
  });
});
