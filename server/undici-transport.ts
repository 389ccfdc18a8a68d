import { Agent } from 'undici';
import type { Transport } from '../lib/upstream/openai-http';

/**
 * The upstream calls on the Node server, through undici's own `request` on a keep-alive pool per origin instead of
 * `fetch`: the same HTTP client underneath, without the WHATWG Request/Response and web-stream layers on top, which
 * cost most of a request's CPU on the way to the upstream (about 0.4 ms against 0.07 ms here, measured with the fake
 * upstream). The edge keeps `fetch`.
 */
export function undiciTransport(): Transport {
  // Connections are kept between requests (keep-alive), so a request does not pay a TCP handshake to the upstream.
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
  return async (url, { headers, body, signal }) => {
    const { origin, pathname, search } = new URL(url);
    const response = await agent.request({
      origin,
      path: `${pathname}${search}`,
      method: 'POST',
      headers,
      body,
      signal,
    });
    const received = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) received.append(name, one);
    }
    return {
      status: response.statusCode,
      headers: received,
      body: response.body,
      text: () => response.body.text(),
      cancel: async () => {
        response.body.destroy();
      },
    };
  };
}
