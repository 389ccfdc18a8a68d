import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** A speech bubble: drawn, not shipped as a binary, so it is one readable string served with its own type. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<path fill="#2557d6" d="M8 3h16a6 6 0 0 1 6 6v10a6 6 0 0 1-6 6H15l-7 5v-5a6 6 0 0 1-6-6V9a6 6 0 0 1 6-6z"/>
<circle fill="#fff" cx="10" cy="14" r="2.2"/><circle fill="#fff" cx="16" cy="14" r="2.2"/>
<circle fill="#fff" cx="22" cy="14" r="2.2"/>
</svg>
`;

const CSS = `
  :root { color-scheme: light dark; --bg: #fff; --fg: #1d2129; --muted: #667085; --rule: #d6dae1;
    --bubble: #eef1f6; --code: #f3f4f7; --accent: #2557d6; --on-accent: #fff; --error: #a01818; --error-bg: #fdf0f0; }
  @media (prefers-color-scheme: dark) { :root { --bg: #14161a; --fg: #e3e6eb; --muted: #98a0ad; --rule: #353a44;
    --bubble: #252a33; --code: #1d2128; --accent: #86a8ff; --on-accent: #0d1426; --error: #ff8a8a; --error-bg: #2d1a1c; } }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--fg); font: 16px/1.55 system-ui, sans-serif; }
  main { max-width: 46rem; min-height: 100dvh; margin: 0 auto; padding: 0 1rem; display: flex; flex-direction: column; }
  header { position: sticky; top: 0; z-index: 1; display: flex; align-items: center; gap: .4rem; padding: .6rem 0;
    background: var(--bg); border-bottom: 1px solid var(--rule); }
  h1 { font-size: 1rem; margin: 0 auto 0 0; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  button, select, textarea { font: inherit; color: inherit; }
  button { cursor: pointer; } button:disabled { cursor: default; opacity: .5; }
  header button, header select { flex: none; font-size: .875rem; padding: .3rem .4rem; border: 1px solid var(--rule);
    border-radius: .5rem; background: var(--bg); white-space: nowrap; line-height: 1.4; }
  #messages { list-style: none; padding: 0; margin: 1rem 0; flex: 1; }
  .hint { color: var(--muted); text-align: center; margin-top: 20vh; }
  li { margin: 0 0 1.25rem; overflow-wrap: anywhere; }
  li[data-role="user"] { display: flex; flex-direction: column; align-items: flex-end; }
  li[data-role="user"] .text { white-space: pre-wrap; max-width: 85%; padding: .5rem .85rem; border-radius: 1.1rem;
    background: var(--bubble); }
  .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
  .text > :first-child { margin-top: 0; } .text > :last-child { margin-bottom: 0; }
  .text p, .text ul, .text ol, .text pre, .text blockquote { margin: .6rem 0; }
  .text ul, .text ol { padding-left: 1.4rem; }
  .text a { color: var(--accent); }
  .text code { font: .88em/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--code);
    padding: .1em .3em; border-radius: .3em; }
  .text pre { background: var(--code); border: 1px solid var(--rule); border-radius: .5rem; padding: .7rem .85rem;
    overflow-x: auto; overflow-wrap: normal; }
  .text pre code { padding: 0; background: none; }
  .text blockquote { border-left: 3px solid var(--rule); padding-left: .75rem; color: var(--muted); }
  .reasoning { margin: 0 0 .5rem; padding-left: .7rem; border-left: 2px solid var(--rule); color: var(--muted);
    font-size: .9em; white-space: pre-wrap; }
  .reasoning summary { cursor: pointer; width: fit-content; }
  .tool { margin: 0 0 .5rem; font-family: ui-monospace, monospace; font-size: .85em; color: var(--muted);
    overflow-wrap: anywhere; }
  .tool[data-state="output-error"] .result { color: var(--error); }
  .foot { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 .75rem; margin-top: .2rem; }
  .meta { margin: 0; font-size: .8em; color: var(--muted); }
  .stopped { color: var(--error); }
  .actions button { border: 0; background: none; padding: .1rem .25rem; font-size: .8em; color: var(--muted); }
  .actions button:hover, .actions button:focus-visible { color: var(--accent); }
  .pending { color: var(--muted); animation: pulse 1.2s ease-in-out infinite; }
  @keyframes pulse { 50% { opacity: .3; } }
  @media (prefers-reduced-motion: reduce) { .pending { animation: none; } }
  .error { display: flex; flex-wrap: wrap; align-items: center; gap: .25rem .75rem; margin: 0 0 1rem;
    padding: .6rem .85rem; border: 1px solid var(--error); border-radius: .6rem; background: var(--error-bg);
    color: var(--error); }
  #error { margin: 0; flex: 1 1 14rem; }
  .error button { border: 1px solid currentColor; border-radius: .4rem; background: none; padding: .1rem .6rem;
    font-size: .875rem; color: inherit; }
  .files { display: flex; flex-wrap: wrap; justify-content: flex-end; gap: .4rem; max-width: 85%; margin-bottom: .35rem; }
  .files img { display: block; width: 8rem; height: 8rem; object-fit: cover; border-radius: .8rem;
    border: 1px solid var(--rule); background: var(--code); }
  .files a { color: var(--accent); font-size: .9em; }
  @media (max-width: 30rem) { .files img { width: 6rem; height: 6rem; } }
  form { position: sticky; bottom: 0; padding: .5rem 0 1rem; background: var(--bg); }
  form.dragging { outline: 2px dashed var(--accent); outline-offset: -.15rem; border-radius: .8rem; }
  form .row { display: flex; align-items: flex-end; gap: .5rem; }
  .previews ul { list-style: none; display: flex; flex-wrap: wrap; gap: .6rem; margin: .3rem 0 .6rem; padding: 0; }
  .previews li { position: relative; margin: 0; }
  .previews img { display: block; width: 4rem; height: 4rem; object-fit: cover; border-radius: .5rem;
    border: 1px solid var(--rule); background: var(--code); }
  .previews .remove { position: absolute; top: -.45rem; right: -.45rem; width: 1.5rem; height: 1.5rem; padding: 0;
    border: 1px solid var(--rule); border-radius: 50%; background: var(--bg); line-height: 1; font-size: 1rem; }
  .previews .remove:hover, .previews .remove:focus-visible { color: var(--error); border-color: var(--error); }
  #attach-notice { margin: 0 0 .5rem; font-size: .875rem; color: var(--error); }
  #attach { flex: none; display: grid; place-items: center; width: calc(2.65rem + 2px); height: calc(2.65rem + 2px);
    padding: 0; border: 1px solid var(--rule); border-radius: .8rem; background: var(--bg); color: var(--muted); }
  #attach:hover, #attach:focus-visible { color: var(--accent); border-color: var(--accent); }
  #prompt { flex: 1; min-width: 0; max-height: 12rem; padding: .55rem .8rem; resize: none; background: var(--bg);
    border: 1px solid var(--rule); border-radius: .8rem; }
  #prompt::placeholder { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  #prompt:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
  #send, #stop { padding: .55rem 1rem; border: 1px solid var(--accent); border-radius: .8rem; background: var(--accent);
    color: var(--on-accent); }
  #stop { background: none; color: var(--accent); }
`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ai-chat-proxy</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>${CSS}</style>
</head>
<body><div id="root"></div><script type="module" src="/chat.js"></script></body>
</html>
`;

export interface ChatPage {
  html(): Response;
  script(): Promise<Response>;
}

const HEADERS = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };

/**
 * The chat page the Node server serves at `/`. Its script (React + `useChat`) is bundled on first request and kept
 * in memory, so start-up stays fast and there is no build step to forget.
 */
export function chatPage(): ChatPage {
  let bundle: Promise<string> | undefined;
  return {
    html: () => new Response(HTML, { headers: { ...HEADERS, 'content-type': 'text/html; charset=utf-8' } }),
    async script() {
      bundle ??= bundleScript();
      return new Response(await bundle, {
        headers: { ...HEADERS, 'content-type': 'text/javascript; charset=utf-8' },
      });
    },
  };
}

/** The favicon, for `/favicon.svg` and for the `/favicon.ico` that browsers and crawlers ask for unprompted. */
export function favicon(headers: Record<string, string>): Response {
  return new Response(FAVICON_SVG, { headers: { ...headers, 'content-type': 'image/svg+xml' } });
}

/**
 * The same page as static files (index.html, chat.js, favicon.svg) for a host that serves files next to the edge
 * function, as Vercel does with `public/` (`npm run build`). The page calls /api/chat on its own origin either way.
 */
export async function writeStaticPage(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['index.html', HTML],
    ['chat.js', await bundleScript()],
    ['favicon.svg', FAVICON_SVG],
  ];
  await Promise.all(files.map(([name, text]) => writeFile(join(dir, name), text)));
  return files.map(([name]) => join(dir, name));
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
