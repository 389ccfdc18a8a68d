import { ProxyError } from '../errors';
import { ALLOW } from './responses';

/** Only what the endpoint needs: browsers are told exactly this much. */
const ALLOW_METHODS = 'POST';
const ALLOW_HEADERS = 'content-type, authorization, x-request-id';
/** Headers a browser page may read: the request id, which model answered, and the quota. */
const EXPOSE_HEADERS = [
  'x-request-id',
  'x-chat-model',
  'x-chat-fallback',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'ratelimit',
  'ratelimit-policy',
].join(', ');

export interface CorsOptions {
  readonly allowedOrigins: readonly string[];
  readonly maxAgeSeconds: number;
}

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
 * Exact origins, `https://*.example.com` patterns for subdomains, or an explicit `*`. The page's own origin is
 * always allowed, so the chat page our server serves works with no setting. Credentials are never granted: callers
 * authenticate with a bearer token, not cookies, so `*` can never be combined with them.
 */
export function createCors(options: CorsOptions): Cors {
  const any = options.allowedOrigins.includes('*');
  const exact = new Set(options.allowedOrigins.filter((o) => !o.includes('*')));
  const patterns = options.allowedOrigins.filter((o) => o.includes('*.')).map(subdomainPattern);
  const allowed = (origin: string, own: string) =>
    origin === own || any || exact.has(origin) || patterns.some((p) => p.test(origin));

  const grant = (origin: string): Record<string, string> => ({
    'access-control-allow-origin': any && !exact.has(origin) ? '*' : origin,
    'access-control-expose-headers': EXPOSE_HEADERS,
    vary: 'Origin',
  });

  const decide = (req: Request): Record<string, string> | undefined => {
    const origin = req.headers.get('origin');
    if (origin === null) return { vary: 'Origin' };
    if (!allowed(origin.toLowerCase(), ownOrigin(req))) return undefined;
    return grant(origin);
  };

  const denied = () =>
    new ProxyError(403, 'origin_not_allowed', 'This site is not allowed to use the chat service.', {
      headers: { vary: 'Origin' },
    });

  return {
    check(req) {
      const headers = decide(req);
      if (!headers) throw denied();
      return headers;
    },
    preflight(req, base) {
      const isPreflight = req.headers.has('origin') && req.headers.has('access-control-request-method');
      if (!isPreflight) {
        return new Response(null, {
          status: 204,
          headers: { ...base, allow: ALLOW, vary: 'Origin' },
        });
      }
      const headers = decide(req);
      if (!headers) throw denied();
      return new Response(null, {
        status: 204,
        headers: {
          ...base,
          ...headers,
          'access-control-allow-methods': ALLOW_METHODS,
          'access-control-allow-headers': ALLOW_HEADERS,
          'access-control-max-age': String(options.maxAgeSeconds),
        },
      });
    },
  };
}

function ownOrigin(req: Request): string {
  try {
    return new URL(req.url).origin.toLowerCase();
  } catch {
    return '';
  }
}

/** `https://*.example.com` → any subdomain (at any depth) of example.com over https, not the bare domain. */
function subdomainPattern(pattern: string): RegExp {
  const [scheme, host] = pattern.split('://*.');
  const escaped = (host ?? '').replace(/[.]/g, '\\.');
  return new RegExp(`^${scheme}://([a-z0-9-]+\\.)+${escaped}$`);
}
