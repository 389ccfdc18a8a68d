import { readFileSync } from 'node:fs';
import { type Env, invalid } from '../lib/config/env';

/**
 * `TOOLS_FILE`, read once at startup: its content becomes `TOOLS`, which lib/config validates. The file is read here
 * and not in lib/config because the handler also runs on the edge, which has no file system (there, `TOOLS` holds
 * the JSON itself). Setting both would leave one silently ignored, so it is refused.
 */
export function withToolsFile(env: Env): Env {
  const path = env.TOOLS_FILE?.trim();
  if (!path) return env;
  if (env.TOOLS?.trim())
    throw invalid('TOOLS_FILE', 'and TOOLS are both set: declare the tools in one of them');
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw invalid('TOOLS_FILE', `cannot be read (${code}): it must be the path of a JSON file of tools`);
  }
  return { ...env, TOOLS: content, TOOLS_FILE: undefined };
}
