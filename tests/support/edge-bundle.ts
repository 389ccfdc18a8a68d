import { builtinModules } from 'node:module';
import { resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

export interface EdgeBundle {
  readonly code: string;
  readonly bytes: number;
  readonly gzipBytes: number;
  /** Every Node built-in the bundle tried to import, with who imported it. Must be empty. */
  readonly nodeBuiltins: readonly string[];
}

const BUILTIN = new RegExp(`^(node:.*|${builtinModules.map((m) => m.replace(/[/.]/g, '\\$&')).join('|')})$`);

/** Records (instead of resolving) any import of a Node built-in, so the test can name the culprit. */
function forbidNodeBuiltins(found: string[]): Plugin {
  return {
    name: 'forbid-node-builtins',
    setup(b) {
      b.onResolve({ filter: BUILTIN }, (args) => {
        found.push(`${args.path} (imported by ${args.importer.replace(`${process.cwd()}/`, '')})`);
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * Bundles an edge function (api/chat.ts unless told) the way an edge platform does (browser-like platform, `edge-light` export conditions,
 * minified) and wraps it in a fetch-event listener so Vercel's `edge-runtime` VM can dispatch requests to it.
 */
export async function buildEdgeBundle(entry = './api/chat'): Promise<EdgeBundle> {
  const found: string[] = [];
  const result = await build({
    stdin: {
      contents: [
        `import handler, { config } from ${JSON.stringify(entry)};`,
        `if (config.runtime !== 'edge') throw new Error('${entry} is not an edge function');`,
        'addEventListener("fetch", (event) => event.respondWith(handler(event.request)));',
      ].join('\n'),
      resolveDir: resolve(import.meta.dirname, '../..'),
      loader: 'ts',
    },
    bundle: true,
    write: false,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    // The export conditions Vercel's builder (@vercel/node, `compile`) resolves an edge function's imports with. Without
    // `module` a package such as @opentelemetry/api came in as its CommonJS build, which nothing can tree-shake: 3.7 KB
    // gzipped that Vercel never ships.
    conditions: ['edge-light', 'browser', 'module', 'import', 'require'],
    plugins: [forbidNodeBuiltins(found)],
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no output');
  return {
    code: file.text,
    bytes: file.contents.byteLength,
    gzipBytes: gzipSync(file.contents).byteLength,
    nodeBuiltins: found,
  };
}
