import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChatHandler } from '../lib/chat-handler';
import { buildHandler, startHarness, testConfig } from './support/harness';
import { SECRETS } from './support/secret-scan';

/**
 * Property-based fuzzing of the whole handler. CI runs a fixed seed; explore more locally with
 * `FUZZ_RUNS=20000 FUZZ_SEED=$RANDOM npx vitest run tests/fuzz.test.ts` (a failure prints its seed and path to replay).
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261129);
const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);

const h = await startHarness({ MAX_BODY_BYTES: '65536', MAX_MESSAGE_CHARS: '4000', MAX_TOTAL_CHARS: '8000' });

const encoder = new TextEncoder();
const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

/** Any value, with prototype-pollution keys likely to show up as object keys. */
const anyValue = fc.oneof(
  fc.jsonValue(),
  fc.anything({ key: fc.oneof(fc.string(), fc.constantFrom(...POLLUTION_KEYS)), maxDepth: 4 }),
  fc.constantFrom(null, true, 0, -1, 1e308, '', [], {}),
);
const weirdText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }), // includes lone surrogates
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.constantFrom('\u0000', '\uFEFF', '\u202E', '\uD800', '👩‍👩‍👧‍👦'.repeat(100), ' '.repeat(50)),
  fc.integer({ min: 0, max: 6000 }).map((n) => 'x'.repeat(n)),
);
/** Mostly the valid thing, sometimes anything: near-valid inputs reach the deep corners of validation. */
const mostly = <T>(valid: fc.Arbitrary<T>, broken: fc.Arbitrary<unknown> = anyValue) =>
  fc.oneof({ weight: 4, arbitrary: valid as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: broken });
const role = mostly(
  fc.constantFrom('user', 'assistant'),
  fc.oneof(fc.constantFrom('system', 'tool', '', 'USER'), anyValue),
);
const content = mostly(fc.string({ minLength: 1, maxLength: 40 }), fc.oneof(weirdText, anyValue));
const simpleMessage = mostly(fc.record({ role, content }, { requiredKeys: ['role', 'content'] }));
const part = mostly(
  fc.oneof(fc.record({ type: fc.constant('text'), text: content }), fc.constant({ type: 'step-start' })),
  fc.oneof(
    fc.record(
      { type: fc.oneof(fc.constantFrom('file', 'tool-x', 'reasoning', 'text'), anyValue), text: weirdText },
      { requiredKeys: [] },
    ),
    anyValue,
  ),
);
const uiMessage = mostly(
  fc.record(
    {
      id: mostly(fc.string({ maxLength: 20 })),
      role,
      parts: mostly(fc.array(part, { minLength: 1, maxLength: 4 }), fc.oneof(fc.constant([]), anyValue)),
    },
    { requiredKeys: ['role', 'parts'] },
  ),
);
const options = {
  model: mostly(
    fc.constantFrom('test-model', 'test-model-large'),
    fc.oneof(fc.constantFrom('gpt-4o', ''), anyValue),
  ),
  maxTokens: mostly(fc.integer({ min: 1, max: 1024 }), fc.oneof(fc.integer(), fc.double(), anyValue)),
  temperature: mostly(fc.double({ min: 0, max: 2, noNaN: true }), fc.oneof(fc.double(), anyValue)),
  [POLLUTION_KEYS[0] as string]: anyValue,
};
const messages = <T>(message: fc.Arbitrary<T>) =>
  mostly(fc.array(message, { minLength: 1, maxLength: 6 }), fc.oneof(fc.constant([]), anyValue));
const chatShaped = fc.oneof(
  fc.record({ messages: messages(simpleMessage), ...options }, { requiredKeys: ['messages'] }),
  fc.record(
    { id: fc.string(), messages: messages(uiMessage), trigger: fc.constant('submit-message'), ...options },
    { requiredKeys: ['messages'] },
  ),
);

/** Bodies as bytes: structured-but-wrong JSON, random JSON, deep nesting, huge, truncated, and invalid UTF-8. */
const body: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: chatShaped.map((v) => encoder.encode(JSON.stringify(v) ?? 'null')) },
  { weight: 2, arbitrary: anyValue.map((v) => encoder.encode(JSON.stringify(v) ?? 'undefined')) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 20_000 })
      .map((n) => encoder.encode(`${'['.repeat(n)}${']'.repeat(n)}`)),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 5_000 })
      .map((n) => encoder.encode(`{"messages":[${'{"content":'.repeat(n)}1${'}'.repeat(n)}]}`)),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 60_000, max: 300_000 })
      .map((n) => encoder.encode(JSON.stringify({ messages: [{ role: 'user', content: 'y'.repeat(n) }] }))),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(chatShaped, fc.nat()).map(([v, cut]) => {
      const bytes = encoder.encode(JSON.stringify(v));
      return bytes.slice(0, cut % Math.max(1, bytes.length));
    }),
  },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2_000 }) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 200 })
      .map(
        (junk) =>
          new Uint8Array([
            ...encoder.encode('{"messages":[{"role":"user","content":"'),
            ...junk,
            ...encoder.encode('"}]}'),
          ]),
      ),
  },
);

interface Checked {
  status: number;
  streamed: boolean;
}

/** The handler's contract for any input: a 4xx JSON error or a complete valid stream; never a throw, a 500 or a leak. */
async function callAndCheck(handler: ChatHandler, req: Request): Promise<Checked> {
  const res = await handler(req);
  expect(res.status).not.toBe(500);
  expect(res.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  const text = await res.text();
  expect(text).not.toContain(SECRETS.upstreamKey);
  if (res.status === 200) {
    const type = res.headers.get('content-type') ?? '';
    if (type.startsWith('text/event-stream')) expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    else expect(type).toBe('text/plain; charset=utf-8');
    return { status: 200, streamed: true };
  }
  if (res.status === 204) return { status: 204, streamed: false };
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  const parsed = JSON.parse(text) as { error: { code: unknown; message: unknown } };
  expect(typeof parsed.error.code).toBe('string');
  expect(typeof parsed.error.message).toBe('string');
  expect(text).not.toMatch(/\bat \S+ \(|node_modules/);
  return { status: res.status, streamed: false };
}

describe('fuzzing', () => {
  it(`survives ${RUNS} generated bodies, and never calls the upstream for an invalid one (seed ${SEED})`, async () => {
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    let streams = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(body, async (bytes) => {
        const before = h.fake.calls.length;
        const req = new Request('http://proxy.test/api/chat', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-real-ip': '203.0.113.5' },
          body: new Uint8Array(bytes),
        });
        const result = await callAndCheck(h.handler, req);
        // Valid requests reach the upstream exactly once; invalid ones never.
        expect(h.fake.calls.length - before).toBe(result.streamed ? 1 : 0);
        if (result.streamed) streams++;
        else refused++;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // The generators must actually reach both sides of the contract.
    expect(streams).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(RUNS / 2);
  }, 120_000);

  const headerValue = fc.oneof(
    fc.string({
      unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
      maxLength: 300,
    }),
    fc.constantFrom(
      '',
      'null',
      '*',
      'Bearer',
      'Bearer ',
      `Bearer ${'a'.repeat(5000)}`,
      'https://*.example.com',
      '::1',
      '1.2.3.4, 5.6.7.8',
      'x'.repeat(4000),
    ),
  );
  const headerSets = fc.record(
    {
      origin: headerValue,
      authorization: headerValue,
      'content-type': fc.oneof(
        headerValue,
        fc.constantFrom('application/json', 'APPLICATION/JSON; charset=utf-8', 'application/jsonx'),
      ),
      accept: fc.oneof(headerValue, fc.constantFrom('text/plain', 'text/event-stream', '*/*')),
      'x-request-id': headerValue,
      'x-forwarded-for': headerValue,
      'x-real-ip': headerValue,
    },
    { requiredKeys: [] },
  );

  it(`survives ${Math.ceil(RUNS / 3)} absurd header sets, with and without auth and CORS rules (seed ${SEED})`, async () => {
    const handlers = [
      h.handler,
      buildHandler(
        testConfig({
          OPENAI_BASE_URL: h.fake.url,
          ALLOWED_ORIGINS: 'https://app.example.org,https://*.example.com',
          AUTH_TOKENS: `fuzz:${SECRETS.aliceToken}`,
          AUTH_JWT_SECRET: SECRETS.jwtSecret,
          CLIENT_IP_HEADER: 'x-forwarded-for',
        }),
      ),
    ];
    await fc.assert(
      fc.asyncProperty(
        headerSets,
        fc.nat(1),
        fc.constantFrom('POST', 'OPTIONS', 'GET', 'PUT'),
        async (headers, which, method) => {
          const req = new Request('http://proxy.test/api/chat', {
            method,
            headers,
            ...(method === 'POST' || method === 'PUT'
              ? { body: '{"messages":[{"role":"user","content":"hi"}]}' }
              : {}),
          });
          await callAndCheck(handlers[which] as ChatHandler, req);
        },
      ),
      { seed: SEED, numRuns: Math.ceil(RUNS / 3) },
    );
  }, 120_000);
});
