import { serve } from 'srvx';
import { ConfigError, type Env, loadConfig } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { describeStores } from '../lib/limits/create-stores';
import { chatPage } from './chat-page';
import { startDemoUpstream } from './demo';
import { loadDotEnv } from './env-file';
import { nodePlatform } from './node-platform';
import { routes } from './routes';
import { loadServerConfig } from './server-config';

/**
 * The persistent Node server: `npm run dev` (offline, demo upstream when no key is set) and `npm start`
 * (production: a key and a shared rate-limit store are required). It runs exactly the handler that api/chat.ts
 * exports on the edge; only the platform pieces (client IP, Redis transport) differ.
 */
async function main(): Promise<void> {
  const dev = process.argv.includes('--dev');
  if (loadDotEnv()) console.log('Read settings from .env (variables already set in the environment win).');
  const env: Env =
    dev && !process.env.OPENAI_API_KEY?.trim() ? await withDemoUpstream(process.env) : process.env;
  const server = loadServerConfig(env);
  const config = loadConfig(env, { production: !dev });
  const proxy = createProxy(config, nodePlatform);
  const listening = await serve({
    fetch: routes(proxy.handler, chatPage()),
    port: server.port,
    hostname: server.host,
    silent: true,
    gracefulShutdown: false, // ours below also closes Redis, so the process really exits
  }).ready();
  const shutdown = async () => {
    // Let replies in flight finish, but not forever: platforms send SIGKILL after ~10 s anyway.
    await Promise.race([listening.close(), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS))]);
    await proxy.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  const url = listening.url ?? `http://${server.host}:${server.port}/`;
  console.log(describeStores(config.rateLimit));
  console.log(
    `ai-chat-proxy listening on ${url} (POST ${new URL('/api/chat', url)}) model=${config.defaultModel}`,
  );
}

const SHUTDOWN_GRACE_MS = 8_000;

async function withDemoUpstream(env: Env): Promise<Env> {
  const demo = await startDemoUpstream();
  console.log(
    `No OPENAI_API_KEY set: using the built-in demo upstream at ${demo.url} (canned echo replies, not a model).`,
  );
  return {
    ...env,
    OPENAI_API_KEY: demo.apiKey,
    OPENAI_BASE_URL: demo.url,
    CHAT_MODEL: env.CHAT_MODEL ?? 'demo',
  };
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`ai-chat-proxy cannot start. ${error.message}`);
  } else {
    console.error('ai-chat-proxy cannot start:', error instanceof Error ? error.message : error);
  }
  process.exit(1);
});
