import { ProxyError } from '../errors';

export interface Caller {
  /** The rate-limit key: `ip:203.0.113.7`, `ip:2001:db8:1:2::/64` or (with caller auth) `user:alice`. */
  readonly id: string;
  readonly kind: 'ip' | 'user';
}

/** How the platform reports the client address: Vercel's `x-real-ip`, or the Node server's socket. */
export type ClientIp = (req: Request) => string | undefined;

export interface IdentityOptions {
  readonly clientIpHeader: string | undefined;
  readonly trustedProxyHops: number;
}

/**
 * Who is calling, for limits and budgets. A verified caller id (caller auth) would win; until then, the client IP.
 * When no IP can be determined the request is refused: lumping unknown callers into one shared bucket would let
 * one of them lock out all the others, or let all of them share one generous limit.
 */
export function createCallerIdentifier(
  options: IdentityOptions,
  platformIp: ClientIp,
): (req: Request, verifiedId?: string) => Caller {
  const readIp: ClientIp = options.clientIpHeader
    ? headerIp(options.clientIpHeader, options.trustedProxyHops)
    : platformIp;
  return (req, verifiedId) => {
    if (verifiedId) return { id: `user:${verifiedId}`, kind: 'user' };
    const ip = normalizeIp(readIp(req));
    if (!ip) {
      throw new ProxyError(
        403,
        'caller_unidentified',
        'We could not identify your connection, so this request was refused.',
        {
          detail: options.clientIpHeader
            ? `no valid client IP in the ${options.clientIpHeader} header (is the request bypassing your proxy?)`
            : 'the platform reported no client IP',
        },
      );
    }
    return { id: `ip:${ip}`, kind: 'ip' };
  };
}

/** Reads a header set by a proxy you trust. For `x-forwarded-for`, the entry appended by the outermost trusted proxy. */
function headerIp(name: string, hops: number): ClientIp {
  return (req) => {
    const value = req.headers.get(name);
    if (!value) return undefined;
    if (name !== 'x-forwarded-for') return value.trim();
    // Clients can prepend anything to x-forwarded-for; only the entries our own proxies appended can be trusted.
    const entries = value.split(',').map((s) => s.trim());
    return entries[entries.length - hops];
  };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** A valid IP, canonical; IPv6 is cut to its /64, because one subscriber usually owns a whole /64. */
export function normalizeIp(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const ip = raw
    .trim()
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  if (IPV4.test(ip)) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1] && IPV4.test(mapped[1])) return mapped[1];
  const groups = expandIpv6(ip);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : undefined;
}

function expandIpv6(ip: string): string[] | undefined {
  if (ip.length > 45 || !/^[0-9a-f:]+$/i.test(ip)) return undefined;
  const halves = ip.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.map((g) => Number.parseInt(g, 16).toString(16));
}
