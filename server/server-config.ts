import * as z from 'zod/mini';
import { type Env, intBetween, parseEnv } from '../lib/config/env';

export interface ServerConfig {
  readonly port: number;
  readonly host: string;
}

const schema = z.object({
  PORT: intBetween(0, 65_535, 3000),
  // Loopback by default: a dev proxy that spends your key should not be open to the whole network by accident.
  HOST: z._default(z.string().check(z.trim(), z.minLength(1)), '127.0.0.1'),
});

/** The Node server's own variables (`ENV_FILE` is read before the config, in server/env-file.ts). */
export const SERVER_VARIABLES: readonly string[] = [...Object.keys(schema.shape), 'ENV_FILE'];

/** The Node server's own settings (the handler's are in lib/config.ts). */
export function loadServerConfig(env: Env): ServerConfig {
  const parsed = parseEnv(schema, env);
  return Object.freeze({ port: parsed.PORT, host: parsed.HOST });
}
