import type { SecurityConfig } from '../config/security';
import { ProxyError } from '../errors';
import { ALLOW } from './responses';

/** Only what the endpoint needs: browsers are told exactly this much. */
const ALLOW_METHODS = 'POST, GET, DELETE';
const ALLOW_HEADERS = 'content-type, authorization, x-request-id, cache-control, x-chat-queue-updates';
/** Headers a browser page may read: the request id, which model answered, what was trimmed, and the quota. */
const EXPOSE_HEADERS = [
  'x-request-id',
  'x-chat-model',
  'x-chat-fallback',
  'x-chat-trimmed',
  'x-cache',
  'x-coalesced',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'ratelimit',
  'ratelimit-policy',
].join(', ');

export type CorsSettings = Pick<
  SecurityConfig,
  'allowedOrigins' | 'publicOrigin' | 'corsMaxAgeSeconds' | 'explainRefusals'
>;

export interface Cors {
  /**
   * Headers for the response to `req`. Throws a 403 ProxyError for a browser request from an origin that is not
   * allowed (requests without `Origin`, like curl or server-to-server calls, are not CORS and pass).
   */
  check(req: Request): Record<string, string>;
  /**
   * The answer to an `OPTIONS` request: a preflight grant, or plain `Allow` when it is not a preflight.
   * `base` carries the headers every response has (request id, cache policy).
   */
  preflight(req: Request, base: Record<string, string>): Response;
}

/**
 * Exact origins, `https://*.example.com` patterns for subdomains, or an explicit `*`. The page's own origins are
 * always allowed: `PUBLIC_URL`, and what the platform knows to be its own (`platformOrigins`: Vercel's deployment
 * URLs, the dev server's loopback origins). They come from configuration, never from the request: a Host header
 * says whatever the caller's DNS said, so trusting it would grant a DNS-rebinding page its own origin.
 * `platformOrigins` (lowercase) is read on every request, so the Node server can fill it in once it knows its port.
 * Credentials are never granted: callers authenticate with a bearer token, not cookies, so `*` can never be
 * combined with them.
 */
export function createCors(settings: CorsSettings, platformOrigins: readonly string[] = []): Cors {
  const { allowedOrigins, publicOrigin, explainRefusals } = settings;
  const any = allowedOrigins.includes('*');
  const exact = new Set(allowedOrigins.filter((o) => !o.includes('*')));
  const patterns = allowedOrigins.filter((o) => o.includes('*.')).map(subdomainPattern);
  const allowed = (origin: string) =>
    origin === publicOrigin ||
    platformOrigins.includes(origin) ||
    any ||
    exact.has(origin) ||
    patterns.some((p) => p.test(origin));

  const grant = (origin: string): Record<string, string> => ({
    'access-control-allow-origin': any && !exact.has(origin) ? '*' : origin,
    'access-control-expose-headers': EXPOSE_HEADERS,
    vary: 'Origin',
  });

  const decide = (req: Request): Record<string, string> => {
    const origin = req.headers.get('origin');
    if (origin === null) return { vary: 'Origin' };
    if (!allowed(origin.toLowerCase())) throw originRefused(origin, explainRefusals);
    return grant(origin);
  };

  return {
    check: decide,
    preflight(req, base) {
      const isPreflight = req.headers.has('origin') && req.headers.has('access-control-request-method');
      if (!isPreflight) {
        return new Response(null, {
          status: 204,
          headers: { ...base, allow: ALLOW, vary: 'Origin' },
        });
      }
      const headers = decide(req);
      return new Response(null, {
        status: 204,
        headers: {
          ...base,
          ...headers,
          'access-control-allow-methods': ALLOW_METHODS,
          'access-control-allow-headers': ALLOW_HEADERS,
          'access-control-max-age': String(settings.corsMaxAgeSeconds),
        },
      });
    },
  };
}

/**
 * The log line always says which origin was refused and which setting would let it in; the response says so only
 * outside production (a developer's Vite app on `http://localhost:5173`), since there the reader is an end user.
 */
function originRefused(origin: string, explain: boolean): ProxyError {
  const shown = origin.length > 100 ? `${origin.slice(0, 100)}…` : origin;
  const fix = `add it to ALLOWED_ORIGINS (comma-separated), or set PUBLIC_URL to it if the chat page itself is served from there`;
  const message = explain
    ? `The origin ${shown} is not allowed to call this chat service. To allow it, ${fix}.`
    : 'This site is not allowed to use the chat service.';
  return new ProxyError(403, 'origin_not_allowed', message, {
    headers: { vary: 'Origin' },
    detail: `origin ${shown} is not allowed: ${fix}`,
  });
}

/** `https://*.example.com` → any subdomain (at any depth) of example.com over https, not the bare domain. */
function subdomainPattern(pattern: string): RegExp {
  const [scheme, host] = pattern.split('://*.');
  const escaped = (host ?? '').replace(/[.]/g, '\\.');
  return new RegExp(`^${scheme}://([a-z0-9-]+\\.)+${escaped}$`);
}
