/**
 * Every secret the test suite configures, and every byte of output it sees: response status lines, headers and
 * bodies, log lines, and the server processes' console. `tests/support/per-file.ts` fails the run if any
 * secret, or anything shaped like an API key, shows up in any of it.
 */
export const SECRETS = {
  upstreamKey: 'sk-test-SECRET-0123456789abcdef',
  spareKey: 'sk-spare-SECRET-9876543210',
  bridgeToken: 'bridge-token-SECRET-42',
  aliceToken: 'alice-token-0123456789abcdef',
  bobToken: 'bob-token-fedcba9876543210xyz',
  jwtSecret: 'jwt-secret-for-tests-0123456789abcdefghij',
} as const;

const KEY_SHAPED = /\b(?:sk|gsk)-[A-Za-z0-9*_-]{6,}/;

const outputs: string[] = [];

export function recordOutput(text: string): void {
  outputs.push(text);
}

/** Records a response's status and headers now, and its body as the test reads it (cancel still propagates). */
export function recordResponse(res: Response): Response {
  recordOutput(`${res.status} ${JSON.stringify([...res.headers])}`);
  if (!res.body) return res;
  const decoder = new TextDecoder();
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      recordOutput(decoder.decode(chunk, { stream: true }));
      controller.enqueue(chunk);
    },
  });
  // In the class the handler answered with (a streamed reply's is the platform's: srvx's on Node), so tests see it.
  const ResponseClass = res.constructor as typeof Response;
  return new ResponseClass(res.body.pipeThrough(tap), {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}

/** What leaked, if anything: `name: …context…` per finding. Clears nothing. */
export function findLeaks(): string[] {
  const all = outputs.join('\n');
  const found: string[] = [];
  for (const [name, secret] of Object.entries(SECRETS)) {
    const at = all.indexOf(secret);
    if (at >= 0) found.push(`${name}: …${all.slice(Math.max(0, at - 60), at + secret.length + 20)}…`);
  }
  const shaped = KEY_SHAPED.exec(all);
  if (shaped) found.push(`key-shaped string: ${shaped[0]}`);
  return found;
}

export function outputCount(): number {
  return outputs.length;
}

/** For the guard's own test only: forget a deliberately planted leak. */
export function forgetOutputsFrom(index: number): void {
  outputs.length = index;
}
