import { ProxyError } from '../lib/errors';

/** Refuses a request whose host name this server does not answer to; `undefined` when the host is fine. */
export type HostCheck = (url: URL) => ProxyError | undefined;

/**
 * The DNS-rebinding defence. A page on `http://attacker.example` whose DNS then points at 127.0.0.1 reaches this
 * server with `Host: attacker.example`, same-origin as far as the browser is concerned. So the server answers only
 * to the host names it knows: loopback (`localhost`, `127.x.x.x`, `[::1]`, any port), the host of
 * `PUBLIC_URL`, and `ALLOWED_HOSTS` (`*` turns the check off). The host comes from the URL srvx builds from the
 * Host header (an absolute request target, which no browser sends to a server, wins as HTTP says it must).
 */
export function createHostCheck(
  allowedHosts: readonly string[],
  publicOrigin: string | undefined,
): HostCheck {
  if (allowedHosts.includes('*')) return () => undefined;
  const known = new Set([...allowedHosts, ...(publicOrigin ? [new URL(publicOrigin).hostname] : [])]);
  return (url) => {
    const host = url.hostname;
    if (isLoopbackHost(host) || known.has(host)) return undefined;
    return new ProxyError(
      421,
      'misdirected_request',
      `This server does not answer to the host name "${host}". If it is yours, set PUBLIC_URL to the address the chat is served at, or add the host to ALLOWED_HOSTS.`,
      { detail: `host "${host}" is not loopback, the host of PUBLIC_URL or in ALLOWED_HOSTS` },
    );
  };
}

/** `url.hostname` spellings: WHATWG URLs have already turned `127.1`, `0x7f.1` or `[::ffff:127.0.0.1]` into these. */
function isLoopbackHost(host: string): boolean {
  return (
    host === 'localhost' ||
    host === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host)
  );
}

/**
 * The origins a browser shows for a page the server at `listeningUrl` serves on loopback: the dev server's own, so
 * its chat page works with no setting. Taken from the URL it actually listens on, since `PORT=0` picks the port.
 */
export function loopbackOrigins(listeningUrl: string): string[] {
  return ['localhost', '127.0.0.1', '[::1]'].map((host) => {
    const url = new URL(listeningUrl);
    url.hostname = host;
    return url.origin;
  });
}

/** Said at start when a server would answer to loopback only: a deployment that forgot `PUBLIC_URL`. */
export function loopbackOnlyWarning(
  allowedHosts: readonly string[],
  publicOrigin: string | undefined,
): string | undefined {
  if (allowedHosts.length > 0 || publicOrigin) return undefined;
  return 'PUBLIC_URL is not set: this server answers only to loopback host names (421 to others), and no browser page is its own. Set PUBLIC_URL to the address it is served at, e.g. https://myapp.fly.dev.';
}
