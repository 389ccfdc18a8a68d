import { Agent } from 'undici';
import type { Transport } from '../lib/upstream/openai-http';
import { bodySlabs } from './body-slabs';

/**
 * The upstream calls on the Node server, through undici's own `request` on a keep-alive pool per origin instead of
 * `fetch`: the same HTTP client underneath, without the WHATWG Request/Response and web-stream layers on top, which
 * cost most of a request's CPU on the way to the upstream (about 0.4 ms against 0.07 ms here, measured with the fake
 * upstream). The edge keeps `fetch`.
 */
export function undiciTransport(): Transport {
  // Connections are kept between requests (keep-alive), so a request does not pay a TCP handshake to the upstream.
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
  const bytesOf = bodySlabs(); // undici keeps a body until its reply ends: see server/body-slabs.ts
  return async (url, { headers, body, signal }) => {
    const { origin, pathname, search } = new URL(url);
    const response = await agent.request({
      origin,
      path: `${pathname}${search}`,
      method: 'POST',
      headers,
      body: bytesOf(body),
      signal,
    });
    const raw = response.headers; // names in lower case
    let all: Headers | undefined;
    return {
      status: response.statusCode,
      headers: {
        get: (name) => {
          const key = name.toLowerCase();
          const value = Object.hasOwn(raw, key) ? raw[key] : undefined;
          if (value === undefined) return null;
          return Array.isArray(value) ? value.join(', ') : value;
        },
        all: () => {
          all ??= toHeaders(raw);
          return all;
        },
      },
      body: response.body,
      text: () => response.body.text(),
      cancel: async () => {
        response.body.destroy();
      },
    };
  };
}

function toHeaders(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}
