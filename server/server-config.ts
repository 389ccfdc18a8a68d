import * as z from 'zod/mini';
import { commaList, type Env, httpUrl, intBetween, invalid, parseEnv } from '../lib/config/env';

export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  /** On SIGTERM: how long replies in flight may still run before they are ended with `server_restarting`. */
  readonly shutdownGraceMs: number;
  /** Host names answered besides loopback and the host of `PUBLIC_URL` (server/host-check.ts); `*` means any. */
  readonly allowedHosts: readonly string[];
  /** The bearer token `GET /metrics` asks for; unset, there is no metrics endpoint (404). */
  readonly metricsToken: string | undefined;
  /** An OTLP/HTTP collector (`http://collector:4318`): traces are exported there; unset, none are recorded. */
  readonly otlpEndpoint: string | undefined;
}

const HOST_NAME = /^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])$/;
const HOST_NAME_RULE = 'must list host names like myapp.example.com (no scheme, no port), or *';

const schema = z.object({
  PORT: intBetween(0, 65_535, 3000),
  // Loopback by default: a dev proxy that spends your key should not be open to the whole network by accident.
  HOST: z._default(z.string().check(z.trim(), z.minLength(1)), '127.0.0.1'),
  // Platforms send SIGKILL about 10 s after SIGTERM: 8 s leaves time to end what is left, charge it and log it.
  SHUTDOWN_GRACE_MS: intBetween(0, 600_000, 8_000),
  ALLOWED_HOSTS: z.optional(commaList(z.string().check(z.toLowerCase(), z.regex(HOST_NAME, HOST_NAME_RULE)))),
  // Metrics name models, error rates and traffic: long enough that it cannot be guessed.
  METRICS_TOKEN: z.optional(
    z
      .string()
      .check(z.trim(), z.minLength(16, 'must be at least 16 characters (e.g. `openssl rand -hex 24`)')),
  ),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.optional(httpUrl()),
});

/** The Node server's own variables (`ENV_FILE` is read before the config, in server/env-file.ts). */
export const SERVER_VARIABLES: readonly string[] = [...Object.keys(schema.shape), 'ENV_FILE'];

/** The Node server's own settings (the handler's are in lib/config.ts). */
export function loadServerConfig(env: Env): ServerConfig {
  const parsed = parseEnv(schema, env);
  const allowedHosts = Object.freeze((parsed.ALLOWED_HOSTS ?? []).map(canonicalHost));
  return Object.freeze({
    port: parsed.PORT,
    host: parsed.HOST,
    allowedHosts,
    shutdownGraceMs: parsed.SHUTDOWN_GRACE_MS,
    metricsToken: parsed.METRICS_TOKEN,
    otlpEndpoint: parsed.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
}

/** Spelled the way `url.hostname` spells it (`[0:0::1]` is `[::1]`), since that is what the check compares. */
function canonicalHost(host: string): string {
  if (host === '*') return host;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    throw invalid('ALLOWED_HOSTS', HOST_NAME_RULE);
  }
}
