import { existsSync } from 'node:fs';

/**
 * Reads `.env` from the working directory when there is one, as `vercel dev` does, so the README's
 * "copy .env.example to .env" works for `npm run dev` and `npm start` too. Variables already set win.
 * `ENV_FILE` names another file (the tests point it at nothing, so a developer's own .env cannot leak in).
 */
export function loadDotEnv(path = process.env.ENV_FILE ?? '.env'): boolean {
  if (!existsSync(path)) return false;
  process.loadEnvFile(path);
  return true;
}
