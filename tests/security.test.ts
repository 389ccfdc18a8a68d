import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatHandler } from '../lib/chat-handler';
import type { RequestLog } from '../lib/log';
import { vercelHandler } from '../lib/platform/vercel';
import { routes } from '../server/routes';
import { buildHandler, chatRequest, eventually, startHarness, testConfig, userSays } from './support/harness';
import { findLeaks, forgetOutputsFrom, outputCount, recordOutput, SECRETS } from './support/secret-scan';

const h = await startHarness();

const preflight = (handler: ChatHandler, origin: string, method = 'POST') =>
  handler(
    new Request('http://proxy.test/api/chat', {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': method,
        'access-control-request-headers': 'content-type',
      },
    }),
  );

const fromOrigin = (handler: ChatHandler, origin: string) =>
  handler(chatRequest(userSays('Hi'), { headers: { origin, accept: 'text/plain' } }));

describe('CORS', () => {
  const handler = buildHandler(
    testConfig({
      OPENAI_BASE_URL: h.fake.url,
      ALLOWED_ORIGINS: 'https://app.example.org, https://*.example.com',
      CORS_MAX_AGE: '900',
    }),
  );

  it('answers a preflight from an allowed origin with only what the endpoint needs', async () => {
    const res = await preflight(handler, 'https://app.example.org');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.org');
    expect(res.headers.get('access-control-allow-methods')).toBe('POST');
    expect(res.headers.get('access-control-allow-headers')).toBe('content-type, authorization, x-request-id');
    expect(res.headers.get('access-control-max-age')).toBe('900');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('vary')).toBe('Origin');
    expect(h.fake.calls).toHaveLength(0);
  });

  it('matches subdomain patterns at any depth, but not the bare domain or look-alikes', async () => {
    for (const origin of ['https://chat.example.com', 'https://a.b.example.com']) {
      expect((await preflight(handler, origin)).headers.get('access-control-allow-origin')).toBe(origin);
    }
    for (const origin of [
      'https://example.com',
      'https://evil-example.com',
      'http://chat.example.com',
      'https://chat.example.com.evil.net',
    ]) {
      const res = await preflight(handler, origin);
      expect(res.status).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('grants an allowed origin on the real request, and exposes the useful headers', async () => {
    const res = await fromOrigin(handler, 'https://chat.example.com');
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://chat.example.com');
    expect(res.headers.get('access-control-expose-headers')).toContain('x-request-id');
    expect(res.headers.get('vary')).toBe('Origin');
    await res.text();
  });

  it('refuses a disallowed origin with a 403 JSON error, no grant, and no upstream call', async () => {
    const res = await fromOrigin(handler, 'https://evil.test');
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('vary')).toBe('Origin');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('origin_not_allowed');
    expect(h.fake.calls).toHaveLength(0);
  });

  it('always allows the page’s own origin (the chat page our server serves needs no setting)', async () => {
    const plain = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }));
    const same = await fromOrigin(plain, 'http://proxy.test');
    expect(same.status).toBe(200);
    await same.text();
    expect((await fromOrigin(plain, 'http://localhost:5173')).status).toBe(403);
  });

  it('serves requests without an Origin (curl, servers): CORS is a browser rule', async () => {
    const res = await handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain' } }));
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    await res.text();
  });

  it('allows any origin only when the operator sets *, and never with credentials', async () => {
    const open = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, ALLOWED_ORIGINS: '*' }));
    const res = await preflight(open, 'https://anyone.test');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('answers OPTIONS without a preflight with Allow', async () => {
    const res = await handler(new Request('http://proxy.test/api/chat', { method: 'OPTIONS' }));
    expect(res.status).toBe(204);
    expect(res.headers.get('allow')).toBe('POST, OPTIONS');
  });

  it('rejects a malformed ALLOWED_ORIGINS at start', () => {
    expect(() => testConfig({ ALLOWED_ORIGINS: 'app.example.org' })).toThrow(
      /ALLOWED_ORIGINS must list origins/,
    );
  });
});

describe('caller auth', () => {
  const ALICE = SECRETS.aliceToken;
  const BOB = SECRETS.bobToken;
  const logs: RequestLog[] = [];
  const handler = buildHandler(
    testConfig({
      OPENAI_BASE_URL: h.fake.url,
      AUTH_TOKENS: `alice:${ALICE},bob:${BOB}`,
      RATE_LIMIT_REQUESTS: '1',
    }),
    { logs },
  );
  const as = (token: string | undefined, ip = '198.51.100.200') =>
    handler(
      chatRequest(userSays('Hi'), {
        headers: {
          accept: 'text/plain',
          'x-real-ip': ip,
          ...(token === undefined ? {} : { authorization: token }),
        },
      }),
    );

  it('refuses a missing token with 401 and WWW-Authenticate, before reading the body or calling the upstream', async () => {
    const res = await as(undefined);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ai-chat-proxy"');
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /Authorization: Bearer/,
    );
    expect(h.fake.calls).toHaveLength(0);
  });

  it('refuses a wrong token, a near miss and a malformed header with invalid_token', async () => {
    for (const header of [
      `Bearer ${ALICE}x`,
      `Bearer ${ALICE.slice(0, -1)}`,
      'Bearer',
      `Basic ${ALICE}`,
      ALICE,
    ]) {
      const res = await as(header);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate') ?? '').toMatch(/^Bearer realm="ai-chat-proxy"/);
    }
    expect(h.fake.calls).toHaveLength(0);
  });

  it('lets a valid token in, and limits by the verified caller id, not the IP', async () => {
    const first = await as(`Bearer ${ALICE}`, '198.51.100.201');
    expect(first.status).toBe(200);
    await first.text();
    // Same caller from another IP: still limited (limit 1). Another caller from the same IP: not.
    expect((await as(`Bearer ${ALICE}`, '198.51.100.202')).status).toBe(429);
    const bob = await as(`bearer ${BOB}`, '198.51.100.201');
    expect(bob.status).toBe(200);
    await bob.text();
    await eventually(() => logs.some((l) => l.caller === 'user:bob'));
    expect(logs.map((l) => l.caller)).toContain('user:alice');
  });

  it('never writes a token into a log line, accepted or refused', async () => {
    logs.length = 0;
    await (await as(`Bearer ${BOB}`, '198.51.100.203')).text();
    await (await as(`Bearer ${ALICE}x`, '198.51.100.203')).text();
    await eventually(() => logs.length === 2);
    expect(logs.map((l) => l.status)).toContain(401);
    const text = JSON.stringify(logs);
    expect(text).not.toContain(ALICE);
    expect(text).not.toContain(BOB);
  });

  it('rejects weak static tokens at start without echoing them', () => {
    expect(() => testConfig({ AUTH_TOKENS: 'alice:short' })).toThrow(/at least 16 characters/);
    try {
      testConfig({ AUTH_TOKENS: 'alice:short' });
    } catch (error) {
      expect(String(error)).not.toContain('short');
    }
  });
});

/** A short-lived ES256 token with key id `k1`, as the JWKS test serves it. */
const signEs256 = (key: CryptoKey, subject: string) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setSubject(subject)
    .setExpirationTime('5m')
    .sign(key);

describe('JWT auth', () => {
  const SECRET = SECRETS.jwtSecret;
  const key = new TextEncoder().encode(SECRET);
  const logs: RequestLog[] = [];
  const handler = buildHandler(
    testConfig({
      OPENAI_BASE_URL: h.fake.url,
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWT_ISSUER: 'https://auth.test',
      AUTH_JWT_AUDIENCE: 'chat',
    }),
    { logs },
  );
  const sign = (
    claims: { sub?: string; iss?: string; aud?: string; exp?: string | number },
    secret = key,
    alg = 'HS256',
  ) => {
    let jwt = new SignJWT({}).setProtectedHeader({ alg }).setIssuedAt();
    if (claims.sub) jwt = jwt.setSubject(claims.sub);
    jwt = jwt
      .setIssuer(claims.iss ?? 'https://auth.test')
      .setAudience(claims.aud ?? 'chat')
      .setExpirationTime(claims.exp ?? '5m');
    return jwt.sign(secret);
  };
  const withToken = (token: string) =>
    handler(
      chatRequest(userSays('Hi'), { headers: { accept: 'text/plain', authorization: `Bearer ${token}` } }),
    );

  it('accepts a valid HS256 token and uses its subject as the caller', async () => {
    logs.length = 0;
    const res = await withToken(await sign({ sub: 'user-42' }));
    expect(res.status).toBe(200);
    await res.text();
    await eventually(() => logs.length === 1);
    expect(logs[0]?.caller).toBe('user:user-42');
  });

  it('refuses expired, wrong-issuer, wrong-audience, wrong-secret and subject-less tokens', async () => {
    const bad = [
      await sign({ sub: 'u', exp: Math.floor(Date.now() / 1000) - 60 }),
      await sign({ sub: 'u', iss: 'https://evil.test' }),
      await sign({ sub: 'u', aud: 'other' }),
      await sign({ sub: 'u' }, new TextEncoder().encode('another-secret-0123456789abcdefghijkl')),
      await sign({}),
      'not.a.jwt',
    ];
    for (const token of bad) {
      const res = await withToken(token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(h.fake.calls).toHaveLength(0);
  });

  describe('with a JWKS URL', () => {
    let server: Server;
    let jwks: ChatHandler;
    let privateKey: CryptoKey;
    beforeAll(async () => {
      const pair = await generateKeyPair('ES256');
      privateKey = pair.privateKey;
      const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
      server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [publicJwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      jwks = buildHandler(
        testConfig({ OPENAI_BASE_URL: h.fake.url, AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` }),
      );
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));

    it('answers 503, not 401, when the JWKS endpoint cannot be reached', async () => {
      const down = buildHandler(
        testConfig({ OPENAI_BASE_URL: h.fake.url, AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json' }),
      );
      const token = await signEs256(privateKey, 'u');
      const res = await down(chatRequest(userSays('Hi'), { headers: { authorization: `Bearer ${token}` } }));
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('auth_unavailable');
      expect(h.fake.calls).toHaveLength(0);
    });

    it('verifies tokens signed by a key from the JWKS, and refuses others', async () => {
      const good = await signEs256(privateKey, 'jwks-user');
      const ok = await jwks(
        chatRequest(userSays('Hi'), { headers: { accept: 'text/plain', authorization: `Bearer ${good}` } }),
      );
      expect(ok.status).toBe(200);
      await ok.text();
      const other = (await generateKeyPair('ES256')).privateKey;
      const forged = await signEs256(other, 'x');
      const no = await jwks(chatRequest(userSays('Hi'), { headers: { authorization: `Bearer ${forged}` } }));
      expect(no.status).toBe(401);
    });
  });
});

describe('response headers', () => {
  it('sends a request id, nosniff and no-store on every kind of response, and never a stack trace', async () => {
    const page = { html: () => new Response('page'), script: async () => new Response('script') };
    const server = routes(h.handler, page);
    const get = (path: string) => server(new Request(`http://proxy.test${path}`));
    const responses = [
      await h.handler(chatRequest(userSays('Hi'))),
      await h.handler(chatRequest('{"broken')),
      await h.handler(new Request('http://proxy.test/api/chat', { method: 'GET' })),
      await h.handler(new Request('http://proxy.test/api/chat', { method: 'OPTIONS' })),
      await vercelHandler({})(chatRequest(userSays('Hi'))), // misconfigured: no key
      await get('/nothing-here'),
      await get('/healthz'),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 400, 405, 204, 503, 404, 200]);
    for (const res of responses) {
      expect(res.headers.get('x-request-id')).toMatch(/^[\w-]{8,}$/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.text()).not.toMatch(/\bat \S+ \(|node_modules|\.ts:\d+/);
    }
  });

  it('mints request ids with the injected id source, and keeps a sane one the caller sent', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }), {
      _internal: { newId: () => 'minted-id-1' },
    });
    const minted = await handler(chatRequest(userSays('Hi')));
    expect(minted.headers.get('x-request-id')).toBe('minted-id-1');
    await minted.text();
    const kept = await handler(chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'trace-abc.123' } }));
    expect(kept.headers.get('x-request-id')).toBe('trace-abc.123');
    await kept.text();
    const insane = await handler(
      chatRequest(userSays('Hi'), { headers: { 'x-request-id': 'a b"<script>' } }),
    );
    expect(insane.headers.get('x-request-id')).toBe('minted-id-1');
    await insane.text();
  });
});

describe('secret hygiene', () => {
  it('scans every response and log line of each test file for secrets (and the scan catches a planted one)', async () => {
    const before = outputCount();
    await (await h.handler(chatRequest(userSays('Hi')))).text();
    expect(outputCount()).toBeGreaterThan(before); // the response was recorded
    expect(findLeaks()).toEqual([]);
    const mark = outputCount();
    recordOutput(`oops: ${SECRETS.upstreamKey}`);
    recordOutput('Incorrect API key provided: sk-abcd1234****wxyz');
    expect(findLeaks()).toHaveLength(2);
    forgetOutputsFrom(mark);
    expect(findLeaks()).toEqual([]);
  });
});
