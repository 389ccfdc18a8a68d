import { ProxyError } from '../errors';

export interface Caller {
  /**
   * The rate-limit key: `ip:203.0.113.7`, `ip:2001:db8:1:2::/64`, `ip:::1`, or (with caller auth) the verified id,
   * namespaced by how it was verified: `token:alice` or `jwt:alice` (see lib/http/caller-auth.ts).
   */
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
 * Who is calling, for limits and budgets. A verified caller id (caller auth) wins; without one, the client IP.
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
    if (verifiedId) return { id: verifiedId, kind: 'user' };
    const ip = normalizeIp(readIp(req));
    if (!ip) {
      throw new ProxyError(
        403,
        'caller_unidentified',
        'We could not identify your connection, so this request was refused.',
        {
          detail: options.clientIpHeader
            ? `no usable client IP in the ${options.clientIpHeader} header (is the request bypassing your proxy?)`
            : 'the platform reported no usable client IP',
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

/**
 * One caller, one id, however its address is spelled: the rate limits are only as good as this. Returns `undefined`
 * for anything that is not a usable source address, and the caller is then refused, never guessed at:
 * - IPv4 is strict dotted decimal. A leading zero (`01.02.03.04`) is refused: some parsers read it as octal, so
 *   guessing which address was meant could merge two callers or split one.
 * - IPv4-mapped IPv6 in any spelling (`::ffff:1.2.3.4`, `::ffff:0102:0304`, `0:0:0:0:0:ffff:102:304`) is its IPv4.
 * - The unspecified address (`0.0.0.0`, `::`) and the rest of `::/64` (IPv4-compatible and other leftovers) are
 *   not real sources: counted per /64 they would all share one bucket. Loopback `::1` is kept as itself.
 * - Other IPv6 is cut to its /64, because one subscriber usually owns a whole /64, and written one way whatever the
 *   case, zero compression or zone id: `2001:db8:1:2::/64`.
 */
export function normalizeIp(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const ip = raw.trim();
  if (!ip.includes(':')) {
    const octets = parseIpv4(ip);
    return octets && ipv4Id(octets);
  }
  // Brackets (`[::1]`) and a zone id (`fe80::1%eth0`) are IPv6 spellings, not part of the address.
  const groups = parseIpv6(ip.replace(/^\[(.*)\]$/, '$1').replace(/%[^%]*$/, ''));
  return groups && ipv6Id(groups);
}

function ipv4Id(octets: readonly number[]): string | undefined {
  return octets.every((o) => o === 0) ? undefined : octets.join('.');
}

function ipv6Id(groups: readonly number[]): string | undefined {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = groups;
  if (a || b || c || d) return `${[a, b, c, d].map((n) => n.toString(16)).join(':')}::/64`;
  if (!e && f === 0xffff) return ipv4Id([g >> 8, g & 0xff, h >> 8, h & 0xff]);
  if (!e && !f && !g && h === 1) return '::1';
  return undefined;
}

/** Four decimal octets, 0-255, without leading zeros. One pass over the characters: this runs on every request. */
function parseIpv4(text: string): number[] | undefined {
  const octets: number[] = [];
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const char = i < text.length ? text.charCodeAt(i) : DOT; // the end closes the last octet
    if (char === DOT) {
      if (digits === 0 || value > 255 || octets.length === 4) return undefined;
      octets.push(value);
      value = 0;
      digits = 0;
    } else if (char >= ZERO && char <= ZERO + 9 && digits < 3 && !(digits > 0 && value === 0)) {
      value = value * 10 + (char - ZERO);
      digits++;
    } else return undefined; // not a digit, a fourth digit, or a digit after a leading zero
  }
  return octets.length === 4 ? octets : undefined;
}

const DOT = 46;
const ZERO = 48;

/** The eight 16-bit groups of an IPv6 address, `::` expanded and a dotted IPv4 tail (`::ffff:1.2.3.4`) read. */
function parseIpv6(text: string): number[] | undefined {
  if (text.length > 45 || !/^[0-9a-f:.]+$/i.test(text)) return undefined;
  let head = text;
  let tail: number[] = [];
  if (text.includes('.')) {
    const colon = text.lastIndexOf(':');
    const v4 = parseIpv4(text.slice(colon + 1));
    if (!v4) return undefined;
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    // Keep a `::` just before the IPv4 part; drop a single separating colon.
    head = text.slice(0, colon + 1).replace(/([^:]):$/, '$1');
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const split = (s: string | undefined) => (s ? s.split(':') : []);
  const left = split(halves[0]);
  const right = split(halves[1]);
  const missing = 8 - tail.length - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const hex = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  if (!hex.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return [...hex.map((g) => Number.parseInt(g, 16)), ...tail];
}
