import { Redis } from '@upstash/redis';

/**
 * The Upstash REST client, built once per instance. Its own retries are off and every HTTP call is cut at
 * `timeoutMs`, a backstop: the store guard has usually decided long before. `raw`: answers as Redis gave them,
 * without the client's guess at JSON in every string (see `RedisConnection.raw`).
 */
export function upstashRestRedis(options: {
  url: string;
  token: string;
  timeoutMs: number;
  raw?: boolean;
}): Redis {
  return new Redis({
    url: options.url,
    token: options.token,
    retry: false,
    enableTelemetry: false,
    automaticDeserialization: !options.raw,
    signal: () => AbortSignal.timeout(options.timeoutMs),
  });
}
