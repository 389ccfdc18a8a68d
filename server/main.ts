import { serve } from 'srvx';
import { ConfigError, type Env, loadConfig } from '../lib/config';
import { createProxy } from '../lib/create-proxy';
import { describeStores } from '../lib/limits/create-stores';
import { chatPage } from './chat-page';
import { withConfigFiles } from './config-files';
import { startDemoUpstream } from './demo';
import { loadDotEnv } from './env-file';
import { createHostCheck, loopbackOnlyWarning, loopbackOrigins } from './host-check';
import { keepHeapWhenIdle, nodeServerOptions, stopOnSignal } from './lifecycle';
import { nodePlatform } from './node-platform';
import { startObservability } from './observability';
import { routes } from './routes';
import { loadServerConfig } from './server-config';

/**
 * The persistent Node server: `npm run dev` (offline, demo upstream when no key is set) and `npm start`
 * (production: a key and a shared rate-limit store are required). It runs exactly the handler that api/chat.ts
 * exports on the edge; only the platform pieces (client IP, Redis transport) differ.
 */
async function main(): Promise<void> {
  const dev = process.argv.includes('--dev');
  keepHeapWhenIdle();
  if (loadDotEnv()) console.log('Read settings from .env (variables already set in the environment win).');
  const env: Env = withConfigFiles(
    dev && !process.env.OPENAI_API_KEY?.trim() ? await withDemoUpstream(process.env) : process.env,
  );
  const server = loadServerConfig(env);
  const config = loadConfig(env, { production: !dev });
  const ownOrigins: string[] = []; // the dev server's loopback origins, once the port is bound
  const observe = startObservability(server, config); // metrics and traces, when their variables are set
  const proxy = createProxy(config, { ...nodePlatform, ownOrigins, log: observe.log });
  const listening = await serve({
    fetch: observe.routes(
      proxy,
      routes(
        proxy.handler,
        chatPage(),
        createHostCheck(server.allowedHosts, config.security.publicOrigin),
        config,
      ),
    ),
    port: server.port,
    hostname: server.host,
    silent: true,
    gracefulShutdown: false, // ours drains the replies in flight and closes Redis (server/lifecycle.ts)
    node: nodeServerOptions(config.caps.bodyTimeoutMs),
  }).ready();
  stopOnSignal(listening, observe.closing(proxy), server.shutdownGraceMs);
  const url = listening.url ?? `http://${server.host}:${server.port}/`;
  if (dev) ownOrigins.push(...loopbackOrigins(url));
  const hostNote = dev ? undefined : loopbackOnlyWarning(server.allowedHosts, config.security.publicOrigin);
  if (hostNote) console.log(hostNote);
  console.log(describeStores(config.rateLimit));
  for (const line of observe.describe(url)) console.log(line);
  console.log(
    `ai-chat-proxy listening on ${url} (POST ${new URL('/api/chat', url)}) model=${config.defaultModel} pid=${process.pid}`,
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
