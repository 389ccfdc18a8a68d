import { createHash } from 'node:crypto';

/**
 * @upstash/ratelimit's scripts start with `#!lua flags=allow-key-locking`, a flag Upstash understands and
 * open-source Redis 7.0 rejects ("Unexpected flag in script shebang"). We drop that flag before a script reaches
 * Redis, and remember which SHA the client knows it by, so EVALSHA with the original SHA keeps working.
 */
export class LuaCompat {
  /** Original SHA (what the client computed) → SHA of the script Redis actually holds. */
  private readonly shas = new Map<string, string>();

  /** Rewrites one command in place of sending it: EVAL, EVALSHA, SCRIPT LOAD and their _RO forms. */
  rewrite(command: readonly unknown[]): unknown[] {
    const [name, first, ...rest] = command;
    const op = String(name).toUpperCase();
    if ((op === 'EVAL' || op === 'EVAL_RO') && typeof first === 'string') {
      return [name, this.compatible(first), ...rest];
    }
    if ((op === 'EVALSHA' || op === 'EVALSHA_RO') && typeof first === 'string') {
      return [name, this.sha(first), ...rest];
    }
    if (op === 'SCRIPT' && String(first).toUpperCase() === 'LOAD' && typeof rest[0] === 'string') {
      return [name, first, this.compatible(rest[0])];
    }
    return [...command];
  }

  /** SCRIPT LOAD must answer with the SHA of the script the client sent, not of the rewritten one. */
  originalSha(command: readonly unknown[]): string | undefined {
    const [name, first, script] = command;
    if (
      String(name).toUpperCase() === 'SCRIPT' &&
      String(first).toUpperCase() === 'LOAD' &&
      typeof script === 'string'
    ) {
      return sha1(script);
    }
    return undefined;
  }

  /** The SHA Redis holds the script by, for the one the client computed. */
  sha(sha: string): string {
    return this.shas.get(sha.toLowerCase()) ?? sha;
  }

  /** The script as Redis 7.0 takes it (remembering both SHAs when that changed it). */
  compatible(script: string): string {
    const rewritten = script.replace(/^#!lua flags=([^\n]*)/, (_line, flags: string) => {
      const kept = flags
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f && f !== 'allow-key-locking');
      return kept.length ? `#!lua flags=${kept.join(',')}` : '#!lua';
    });
    if (rewritten !== script) this.shas.set(sha1(script), sha1(rewritten));
    return rewritten;
  }
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}
