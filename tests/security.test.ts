import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatHandler } from '../lib/chat-handler';
import { loadConfig } from '../lib/config';
import type { RequestLog } from '../lib/log';
import { vercelHandler } from '../lib/platform/vercel';
import { createHostCheck } from '../server/host-check';
import { routes } from '../server/routes';
import { loadServerConfig } from '../server/server-config';
import { buildHandler, chatRequest, eventually, startHarness, testConfig, userSays } from './support/harness';
import {
  findLeaks,
  forgetOutputsFrom,
  outputCount,
  recordOutput,
  recordResponse,
  SECRETS,
} from './support/secret-scan';

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
    // GET and DELETE: resuming and stopping a reply (`/api/chat/{chatId}/stream`); cache-control: bypassing the cache.
    expect(res.headers.get('access-control-allow-methods')).toBe('POST, GET, DELETE');
    expect(res.headers.get('access-control-allow-headers')).toBe(
      'content-type, authorization, x-request-id, cache-control, x-chat-queue-updates',
    );
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

  it('allows the page’s own origin from configuration (PUBLIC_URL), never from the Host header', async () => {
    const plain = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }));
    // The request's own URL (its Host) says nothing: a DNS-rebinding page would be "same origin" by it.
    expect((await fromOrigin(plain, 'http://proxy.test')).status).toBe(403);
    const rebound = await plain(
      new Request('http://attacker.example:4201/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'http://attacker.example:4201' },
        body: JSON.stringify(userSays('hi')),
      }),
    );
    expect(rebound.status).toBe(403);
    expect(rebound.headers.get('access-control-allow-origin')).toBeNull();

    // Behind a TLS-terminating proxy the request reaches us as http://127.0.0.1:…; the page is https://myapp.fly.dev.
    const fly = buildHandler(
      testConfig({ OPENAI_BASE_URL: h.fake.url, PUBLIC_URL: 'https://MyApp.fly.dev/' }),
    );
    const res = await fly(
      new Request('http://127.0.0.1:8080/api/chat', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/plain',
          origin: 'https://myapp.fly.dev',
          'x-real-ip': '198.51.100.7',
        },
        body: JSON.stringify(userSays('Hi')),
      }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://myapp.fly.dev');
    await res.text();
    expect((await fromOrigin(fly, 'http://myapp.fly.dev')).status).toBe(403); // another scheme, another origin
    expect(h.fake.calls).toHaveLength(1);
  });

  it('allows Vercel’s own deployment URLs, from Vercel’s environment', async () => {
    const vercel = vercelHandler({
      OPENAI_API_KEY: SECRETS.upstreamKey,
      OPENAI_BASE_URL: h.fake.url,
      CHAT_MODEL: 'test-model',
      VERCEL_URL: 'myapp-abc123-team.vercel.app',
      VERCEL_BRANCH_URL: 'myapp-git-main-team.vercel.app',
      VERCEL_PROJECT_PRODUCTION_URL: 'chat.example.net',
    });
    for (const origin of [
      'https://myapp-abc123-team.vercel.app',
      'https://myapp-git-main-team.vercel.app',
      'https://chat.example.net',
    ]) {
      const res = recordResponse(await preflight(vercel, origin));
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    }
  });

  it('tells a developer which setting lets a refused origin in; production users get the short message', async () => {
    const logs: RequestLog[] = [];
    const dev = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }), { logs });
    const res = await fromOrigin(dev, 'http://localhost:5173');
    expect(res.status).toBe(403);
    const { message } = ((await res.json()) as { error: { message: string } }).error;
    expect(message).toContain('http://localhost:5173');
    expect(message).toContain('ALLOWED_ORIGINS');
    expect(logs[0]?.error_detail).toMatch(/http:\/\/localhost:5173.*ALLOWED_ORIGINS.*PUBLIC_URL/);

    logs.length = 0;
    const config = loadConfig(
      { OPENAI_API_KEY: SECRETS.upstreamKey, CHAT_MODEL: 'test-model', RATE_LIMIT_STORE: 'memory' },
      { production: true },
    );
    const prod = await fromOrigin(buildHandler(config, { logs }), 'https://evil.test');
    expect(((await prod.json()) as { error: { message: string } }).error.message).toBe(
      'This site is not allowed to use the chat service.',
    );
    expect(logs[0]?.error_detail).toMatch(/https:\/\/evil\.test.*ALLOWED_ORIGINS.*PUBLIC_URL/);
    expect(h.fake.calls).toHaveLength(0);
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

  it('rejects a malformed ALLOWED_ORIGINS or PUBLIC_URL at start', () => {
    expect(() => testConfig({ ALLOWED_ORIGINS: 'app.example.org' })).toThrow(
      /ALLOWED_ORIGINS must list origins/,
    );
    expect(() => testConfig({ PUBLIC_URL: 'myapp.fly.dev' })).toThrow(/PUBLIC_URL must be an http\(s\) URL/);
  });
});

describe('DNS rebinding (the Node server’s host check)', () => {
  const page = { html: () => new Response('page'), script: async () => new Response('script') };
  const serve = (hosts: readonly string[], publicUrl?: string) =>
    routes(h.handler, page, createHostCheck(hosts, publicUrl && new URL(publicUrl).origin));
  const post = (url: string) =>
    new Request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(url).origin },
      body: JSON.stringify(userSays('hi')),
    });

  it('refuses a host name it does not know with 421, before anything else', async () => {
    const res = recordResponse(await serve([])(post('http://attacker.example:4201/api/chat')));
    expect(res.status).toBe(421);
    expect(res.headers.get('x-request-id')).toMatch(/^[\w-]{8,}$/);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('misdirected_request');
    expect(error.message).toMatch(/"attacker\.example".*PUBLIC_URL.*ALLOWED_HOSTS/);
    expect((await serve([])(new Request('http://attacker.example/'))).status).toBe(421); // the page too
    expect(h.fake.calls).toHaveLength(0);
  });

  it('keeps /healthz reachable by any host name, for platform health checks', async () => {
    const res = await serve([])(new Request('http://10.0.0.7:8080/healthz'));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('answers loopback names and addresses, the host of PUBLIC_URL and ALLOWED_HOSTS, on any port', async () => {
    const fine = [
      'http://localhost:3000/nothing',
      'http://127.0.0.1/nothing',
      'http://127.1.2.3:80/nothing',
      'http://[::1]:4201/nothing',
      'http://LOCALHOST:1/nothing',
      'http://myapp.fly.dev:8080/nothing',
      'http://chat.internal/nothing',
    ];
    const server = serve(['chat.internal'], 'https://myapp.fly.dev');
    for (const url of fine) expect([url, (await server(new Request(url))).status]).toEqual([url, 404]);
    for (const url of ['http://evil.localhost/', 'http://localhost.attacker.example/', 'http://fly.dev/']) {
      expect([url, (await server(new Request(url))).status]).toEqual([url, 421]);
    }
    expect((await serve(['*'])(new Request('http://anything.test/nothing'))).status).toBe(404);
  });

  it('sends only the chat and its /{chatId}/stream to the chat handler: anything else under /api/chat/ is a 404', async () => {
    const server = serve([]);
    const codeOf = async (res: Response) => ((await res.json()) as { error?: { code: string } }).error?.code;
    // The chat itself reaches the handler (which refuses this caller for its own reasons: anything but a route 404).
    expect(await codeOf(await server(post('http://localhost/api/chat')))).not.toBe('not_found');
    for (const path of [
      '/api/chat/anything',
      '/api/chat/c1/stream/more',
      '/api/chat/c1/streams',
      '/api/chatty',
    ]) {
      const res = await server(post(`http://localhost${path}`));
      expect([path, res.status, await codeOf(res)]).toEqual([path, 404, 'not_found']);
    }
    // The resume path reaches the handler too.
    expect(await codeOf(await server(post('http://localhost/api/chat/c1/stream')))).not.toBe('not_found');
    expect(h.fake.calls).toHaveLength(0);
  });

  it('reads ALLOWED_HOSTS as host names, and rejects a scheme or a port at start', () => {
    expect(loadServerConfig({ ALLOWED_HOSTS: 'MyApp.example.com, [0:0::1], *' }).allowedHosts).toEqual([
      'myapp.example.com',
      '[::1]',
      '*',
    ]);
    for (const bad of ['https://myapp.example.com', 'myapp.example.com:443', 'my app']) {
      expect(() => loadServerConfig({ ALLOWED_HOSTS: bad })).toThrow(/ALLOWED_HOSTS must list host names/);
    }
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
    await eventually(() => logs.some((l) => l.caller === 'token:bob'));
    expect(logs.map((l) => l.caller)).toContain('token:alice');
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
    expect(logs[0]?.caller).toBe('jwt:user-42');
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

  it('keeps JWT subjects apart from static-token callers: sub=alice does not spend the token caller alice’s quota', async () => {
    const both = buildHandler(
      testConfig({
        OPENAI_BASE_URL: h.fake.url,
        AUTH_TOKENS: `alice:${SECRETS.aliceToken}`,
        AUTH_JWT_SECRET: SECRET,
        RATE_LIMIT_REQUESTS: '1',
      }),
      { logs },
    );
    const call = (token: string) =>
      both(
        chatRequest(userSays('Hi'), { headers: { accept: 'text/plain', authorization: `Bearer ${token}` } }),
      );
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setExpirationTime('5m')
      .sign(key);
    logs.length = 0;
    for (const token of [jwt, SECRETS.aliceToken]) {
      const res = await call(token);
      expect(res.status).toBe(200);
      await res.text();
    }
    // Each caller has used its own one request.
    expect((await call(jwt)).status).toBe(429);
    expect((await call(SECRETS.aliceToken)).status).toBe(429);
    await eventually(() => logs.filter((l) => l.status === 200).length === 2);
    const served = logs.filter((l) => l.status === 200).map((l) => l.caller);
    expect(served.sort()).toEqual(['jwt:alice', 'token:alice']);
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
    const server = routes(h.handler, page, createHostCheck(['proxy.test'], undefined));
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
