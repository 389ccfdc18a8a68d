import { execFileSync } from 'node:child_process';

/**
 * Makes sure a binary from a Debian package is installed: on a fresh Debian machine `npm test` installs what it
 * needs (as `.ci/run` does), where it may (root, or passwordless sudo); elsewhere it fails saying what to install.
 */
export function ensureDebianPackage(binary: string, pkg: string, hint: string): string {
  const found = which(binary);
  if (found) return found;
  const sudo = process.getuid?.() === 0 ? [] : canSudo() ? ['sudo', '-n'] : undefined;
  if (sudo && which('apt-get')) {
    console.info(`${binary} is missing: installing Debian's ${pkg}`);
    const run = (args: string[]) => {
      const [command = 'apt-get', ...rest] = [...sudo, ...args];
      execFileSync(command, rest, {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    };
    run(['apt-get', 'update', '-qq']);
    run(['apt-get', 'install', '-y', '-qq', pkg]);
    const installed = which(binary);
    if (installed) return installed;
  }
  throw new Error(`${binary} is not installed and could not be installed here. ${hint}`);
}

function which(binary: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function canSudo(): boolean {
  try {
    execFileSync('sudo', ['-n', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
