import { type ChatHandler, createChatHandler } from './chat-handler';
import type { Config } from './config';
import type { ClientIp } from './limits/caller-identity';
import { createRateLimitGate } from './limits/gate';
import type { LimitStores } from './limits/stores';
import type { Logger } from './log';
import { upstreamFromConfig } from './upstream/create-upstream';

/** What differs between the edge, the Node server and the tests; everything else is built from the config. */
export interface Platform {
  readonly stores: LimitStores;
  /** How this platform reports the client address (Vercel's `x-real-ip`, the Node socket...). */
  readonly clientIp: ClientIp;
  /** Keeps background work alive after the response (Vercel's `waitUntil`); by default the promise just runs. */
  readonly waitUntil?: (promise: Promise<unknown>) => void;
  readonly log?: Logger;
  /** Injected `fetch` for the upstream, or (tests) another key to play a misconfigured server. */
  readonly upstream?: { readonly fetch?: typeof fetch; readonly apiKey?: string };
}

/** The one place that wires the chat handler: api/chat.ts, server/main.ts and the tests all come through here. */
export function wireChatHandler(config: Config, platform: Platform): ChatHandler {
  const waitUntil = platform.waitUntil ?? ((promise: Promise<unknown>) => void promise.catch(() => {}));
  const gate = createRateLimitGate({
    config: config.rateLimit,
    stores: platform.stores,
    clientIp: platform.clientIp,
    waitUntil,
    secrets: config.secrets,
  });
  return createChatHandler({
    config,
    upstream: upstreamFromConfig(config, platform.upstream),
    gate,
    waitUntil,
    ...(platform.log ? { log: platform.log } : {}),
  });
}
