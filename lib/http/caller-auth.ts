import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { isPriority, type SecurityConfig } from '../config/security';
import { briefOutage, ProxyError } from '../errors';

/**
 * A verified caller. The id is namespaced by how it was verified (`token:alice`, `jwt:alice`): the JWT issuer picks
 * its subjects, the operator picks the static callers, so a JWT with `sub=alice` must not spend the static-token
 * caller alice's quota. `priority`: its place in the queue for upstream capacity (higher first; 0 by default).
 */
export interface Verified {
  readonly id: string;
  readonly priority: number;
}

/** Verifies the caller's bearer token; resolves to the verified caller, or `undefined` when auth is off. */
export type Authenticate = (req: Request) => Promise<Verified | undefined>;

const REALM = 'Bearer realm="ai-chat-proxy"';

/**
 * Optional caller auth: static tokens (`AUTH_TOKENS`), and/or JWTs checked with `jose` (HS256 secret or a JWKS URL;
 * signature, expiry, and issuer/audience when set). Static tokens are compared as SHA-256 digests in constant time,
 * against every configured token, so timing reveals nothing about how close a guess was.
 */
export function createAuthenticator(config: SecurityConfig, priorityClaim?: string): Authenticate {
  const { authTokens, jwt } = config;
  if (authTokens.size === 0 && !jwt) return async () => undefined;
  const digests = Promise.all(
    [...authTokens].map(async ([token, caller]) => ({ digest: await sha256(token), caller })),
  );
  const key: Uint8Array | JWTVerifyGetKey | undefined = jwt?.secret
    ? new TextEncoder().encode(jwt.secret)
    : jwt?.jwksUrl
      ? createRemoteJWKSet(new URL(jwt.jwksUrl))
      : undefined;

  return async (req) => {
    const token = bearer(req);
    if (!token) {
      throw unauthorized('Sign-in required: send your token as "Authorization: Bearer <token>".', REALM);
    }
    if (authTokens.size > 0) {
      const presented = await sha256(token);
      let match: { caller: string; priority: number } | undefined;
      for (const { digest, caller } of await digests) {
        if (constantTimeEqual(presented, digest)) match = caller; // no early exit
      }
      if (match) return { id: `token:${match.caller}`, priority: match.priority };
    }
    if (key && jwt) {
      const verified = await verifyJwt(token, key, jwt, priorityClaim).catch(unlessKeysUnreachable);
      if (verified) return verified;
    }
    throw unauthorized(
      'Your sign-in token is invalid or has expired. Please sign in again.',
      `${REALM}, error="invalid_token"`,
    );
  };
}

async function verifyJwt(
  token: string,
  key: Uint8Array | JWTVerifyGetKey,
  jwt: NonNullable<SecurityConfig['jwt']>,
  priorityClaim: string | undefined,
): Promise<Verified | undefined> {
  const options = {
    ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience ? { audience: jwt.audience } : {}),
    // A shared secret only ever signs HS256: refusing other algorithms closes the algorithm-confusion door.
    ...(key instanceof Uint8Array ? { algorithms: ['HS256'] } : {}),
    requiredClaims: ['sub', 'exp'],
  };
  const { payload } =
    key instanceof Uint8Array ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
  const sub = payload.sub;
  if (!sub || !/^[\w.@:|-]{1,128}$/.test(sub)) return undefined;
  // A claim that is not a priority (absent, out of range, not a number) is the default: never a reason to refuse.
  const claimed = priorityClaim ? payload[priorityClaim] : undefined;
  return { id: `jwt:${sub}`, priority: isPriority(claimed) ? Number(claimed) : 0 };
}

/**
 * A token that fails verification is the caller's problem (401). A JWKS endpoint that cannot be reached or read is
 * ours: answering 401 would tell every signed-in user their session is bad, so it is a 503 instead.
 */
function unlessKeysUnreachable(error: unknown): undefined {
  const unreachable =
    error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError;
  if (unreachable) {
    throw briefOutage(
      'auth_unavailable',
      'Sign-in cannot be checked right now. Please try again in a moment.',
      `JWKS unavailable: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return undefined;
}

function bearer(req: Request): string | undefined {
  const header = req.headers.get('authorization');
  const match = header ? /^Bearer\s+([\x21-\x7e]{1,4096})$/i.exec(header.trim()) : null;
  return match?.[1];
}

function unauthorized(message: string, challenge: string): ProxyError {
  return new ProxyError(401, 'unauthorized', message, { headers: { 'www-authenticate': challenge } });
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}
