import { hash } from 'node:crypto';
import type { Platform } from '../lib/create-proxy';
import type { CountTokens } from '../lib/history/token-count';
import { nodeClientSignal } from './client-signal';
import { nodeBodyReader } from './node-body';
import { tcpRedis } from './redis-tcp';
import { nodeStreamResponse } from './reply-pipe';
import { undiciTransport } from './undici-transport';

/**
 * The Node adapter (the Vercel one is lib/platform/vercel.ts): the client IP from the socket, a TCP client for
 * `REDIS_URL` besides Upstash REST, a real tokenizer for the history caps, and undici's pooled `request` for the
 * upstream calls. Background work simply runs; the
 * process outlives the response.
 */
export const nodePlatform: Platform = {
  clientIp: socketIp,
  tcpRedis,
  tokenCounter: loadTokenizer,
  upstreamTransport: undiciTransport(),
  // Node's own hash is synchronous (about 1.4 µs for a reply key, against 40 µs through Web Crypto's job queue), and
  // its one-shot form builds no Hash object: 0.8 against 1.7 µs in a loop, 14 µs a request for the Hash's constructor
  // alone in the server's profile at 32 clients.
  sha256: (text) => hash('sha256', text, 'hex'),
  // srvx's own Response (+6% req/s at 32 clients against the native class, which validates every header first),
  // with the reply written straight to the socket.
  streamResponse: nodeStreamResponse,
  bodyReader: nodeBodyReader,
  clientSignal: nodeClientSignal,
};

/**
 * o200k_base, the tokenizer of OpenAI's current models (gpt-4o, gpt-4.1, o-series, gpt-5); other families count
 * within a few tens of percent of it. Imported only when called: its vocabulary takes ~400 ms to load.
 */
async function loadTokenizer(): Promise<CountTokens> {
  const { countTokens } = await import('gpt-tokenizer');
  // By default it throws on `<|endoftext|>` and its kin; in a user's message they are just text.
  const asText = { disallowedSpecial: new Set<string>() };
  return (text) => countTokens(text, asText);
}

/** srvx puts the socket's remote address on the request. Behind a proxy, set CLIENT_IP_HEADER instead. */
function socketIp(req: Request): string | undefined {
  return 'ip' in req && typeof req.ip === 'string' ? req.ip : undefined;
}
