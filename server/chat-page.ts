import { resolve } from 'node:path';

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ai-chat-proxy</title>
<style>
  :root { color-scheme: light dark; --assistant: #234; --muted: #667; --rule: #ccd; --error: #a00; }
  @media (prefers-color-scheme: dark) { :root { --assistant: #cde; --muted: #99a; --rule: #445; --error: #f88; } }
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
  ol { list-style: none; padding: 0; }
  li { margin: .5rem 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  li[data-role="assistant"] { color: var(--assistant); } #error { color: var(--error); }
  .reasoning { margin: .25rem 0 .25rem .5rem; padding-left: .6rem; border-left: 2px solid var(--rule);
    color: var(--muted); font-size: .9em; }
  .reasoning summary { cursor: pointer; width: fit-content; }
  .meta { margin: .15rem 0 0; font-size: .8em; color: var(--muted); }
  .stopped { color: var(--error); }
  form { display: flex; gap: .5rem; } input { flex: 1; min-width: 0; font: inherit; padding: .4rem; }
</style>
</head>
<body><div id="root"></div><script type="module" src="/chat.js"></script></body>
</html>`;

export interface ChatPage {
  html(): Response;
  script(): Promise<Response>;
}

/**
 * The chat page the Node server serves at `/`. Its script (React + `useChat`) is bundled on first request and kept
 * in memory, so start-up stays fast and there is no build step to forget.
 */
export function chatPage(): ChatPage {
  let bundle: Promise<string> | undefined;
  const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  return {
    html: () => new Response(HTML, { headers: { ...headers, 'content-type': 'text/html; charset=utf-8' } }),
    async script() {
      bundle ??= bundleScript();
      return new Response(await bundle, {
        headers: { ...headers, 'content-type': 'text/javascript; charset=utf-8' },
      });
    },
  };
}

async function bundleScript(): Promise<string> {
  // Loaded on first use: esbuild takes about 0.3 s to import, which every server start would otherwise pay.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [resolve(import.meta.dirname, '../page/chat.tsx')],
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('the chat page did not build');
  return file.text;
}
