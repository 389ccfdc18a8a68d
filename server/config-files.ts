import { readFileSync } from 'node:fs';
import { type Env, invalid } from '../lib/config/env';

/** A JSON setting that the Node server may also read from a file: the file's content becomes the variable. */
export interface FileVariable {
  /** The variable holding the path, e.g. `TOOLS_FILE`. */
  readonly file: string;
  /** The variable the content fills in, e.g. `TOOLS`, which lib/config validates like any other value. */
  readonly json: string;
  /** What the file holds, for the error messages: `a JSON file of tools`. */
  readonly holds: string;
}

export const TOOLS_FILE: FileVariable = { file: 'TOOLS_FILE', json: 'TOOLS', holds: 'a JSON file of tools' };
export const MODEL_PRICES_FILE: FileVariable = {
  file: 'MODEL_PRICES_FILE',
  json: 'MODEL_PRICES',
  holds: 'a JSON file of USD prices per million tokens by model',
};

/** Every `*_FILE` variable, read once at startup, before the config is parsed. */
export function withConfigFiles(env: Env): Env {
  return [TOOLS_FILE, MODEL_PRICES_FILE].reduce(withFileVariable, env);
}

/**
 * Reads `variable.file` into `variable.json`. The file is read here and not in lib/config because the handler also
 * runs on the edge, which has no file system (there, the JSON variable holds the JSON itself, and lib/config refuses
 * the `_FILE` one). Setting both would leave one silently ignored, so it is refused. The file's content is checked
 * to be JSON here, so a syntax error names the file's variable; what the JSON says is lib/config's to judge.
 */
export function withFileVariable(env: Env, variable: FileVariable): Env {
  const { file, json, holds } = variable;
  const path = env[file]?.trim();
  if (!path) return env;
  if (env[json]?.trim()) throw invalid(file, `and ${json} are both set: use one of them`);
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw invalid(file, `cannot be read (${code}): it must be the path of ${holds}`);
  }
  try {
    JSON.parse(content);
  } catch {
    // Not the parser's message: it quotes the file's content.
    throw invalid(file, `is not valid JSON: it must be the path of ${holds}`);
  }
  return { ...env, [json]: content, [file]: undefined };
}
