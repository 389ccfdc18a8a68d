import { serve } from 'srvx';
import { createChatHandler } from '../lib/chat-handler';
import { ConfigError, type Env, loadConfig } from '../lib/config';
import { createUpstream } from '../lib/upstream';
import { startDemoUpstream } from './demo';
import { routes } from './routes';
import { loadServerConfig } from './server-config';

/**
 * The persistent Node server: `npm run dev` (offline, demo upstream when no key is set) and `npm start`
 * (production: a key is required). It runs exactly the handler that api/chat.ts exports on the edge.
 */
async function main(): Promise<void> {
  const dev = process.argv.includes('--dev');
  const env: Env =
    dev && !process.env.OPENAI_API_KEY?.trim() ? await withDemoUpstream(process.env) : process.env;
  const server = loadServerConfig(env);
  const config = loadConfig(env);
  const chat = createChatHandler({ config, upstream: createUpstream(config) });
  const listening = await serve({
    fetch: routes(chat),
    port: server.port,
    hostname: server.host,
    silent: true,
  }).ready();
  const url = listening.url ?? `http://${server.host}:${server.port}/`;
  console.log(
    `ai-chat-proxy listening on ${url} (POST ${new URL('/api/chat', url)}) model=${config.defaultModel}`,
  );
}

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
