import { describe, expect, it } from 'vitest';
import { chatRequest, startHarness, streamedRequest, userSays } from './support/harness';

/**
 * A body trickled in byte by byte would hold a connection before any rate limit applies: it gets BODY_TIMEOUT_MS,
 * in the handler itself, so the edge function has the deadline too. (tests/server.test.ts sends one at 1 byte
 * per second to the real Node server.)
 */
// No attachments, so the reader stops at MAX_BODY_BYTES itself (with them it reads on, up to their allowance).
const h = await startHarness({ BODY_TIMEOUT_MS: '50', MAX_BODY_BYTES: '2000', ATTACHMENT_TYPES: 'none' });

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe('the body read deadline', () => {
  it('answers a body that stops arriving with 408 and lets go of the upload', async () => {
    let cancelled = false;
    const stuck = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"messages":'));
      },
      cancel() {
        cancelled = true;
      },
    });
    const req = streamedRequest(stuck);
    const res = await h.handler(req);
    expect(res.status).toBe(408);
    // The rest of the body may still come: that connection cannot carry another request.
    expect(res.headers.get('connection')).toBe('close');
    const error = await errorOf(res);
    expect(error.code).toBe('request_timeout');
    expect(error.message).toMatch(/arrived too slowly.*send it again/);
    expect(cancelled).toBe(true);
    expect(h.fake.calls).toHaveLength(0);
    expect(h.logs).toMatchObject([{ status: 408, outcome: 'rejected', error_code: 'request_timeout' }]);
  });

  it('closes the connection after a 413 too, since the rest of the body was not read', async () => {
    const res = await h.handler(chatRequest(userSays('x'.repeat(3000))));
    expect(res.status).toBe(413);
    expect(res.headers.get('connection')).toBe('close');
  });

  it('leaves a body that arrives in time alone', async () => {
    const res = await h.handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    expect(res.status).toBe(200);
    expect(res.headers.get('connection')).toBeNull();
    await res.text();
  });
});
