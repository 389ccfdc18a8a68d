import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../lib/config';
import { SERVER_VARIABLES } from '../server/server-config';

/** `UPSTREAM_<NAME>_BASE_URL`, `_API_KEY`, `_MAX_CONCURRENT`, `_RPM`, `_TPM` are named by the operator: the docs show `<NAME>`. */
const PER_PROVIDER = /^UPSTREAM_(<NAME>|[A-Z0-9]+)_(BASE_URL|API_KEY|MAX_CONCURRENT|RPM|TPM)$/;

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');

/** The first cell of each row of the README's configuration table; `_TOKEN` after `A_URL` means `A_TOKEN`. */
function readmeVariables(): string[] {
  const section = read('README.md').split('\n## Configuration')[1]?.split('\n## ')[0] ?? '';
  const names: string[] = [];
  for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
    const cell = row.split('|')[1] ?? '';
    let previous = '';
    for (const [, name = ''] of cell.matchAll(/`([A-Z_<>]+)`/g)) {
      previous = name.startsWith('_') ? previous.replace(/_[A-Z]+$/, name) : name;
      names.push(previous);
    }
  }
  return names;
}

/** Every `NAME=` in .env.example, commented out or not. */
function envExampleVariables(): string[] {
  return [...read('.env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '');
}

const fixed = (names: string[]) => new Set(names.filter((name) => !PER_PROVIDER.test(name)));

describe('configuration docs', () => {
  const code = new Set([...CONFIG_VARIABLES, ...SERVER_VARIABLES]);

  it('the README table names exactly the variables the code reads', () => {
    expect([...fixed(readmeVariables())].sort()).toEqual([...code].sort());
  });

  it('.env.example names exactly the variables the code reads', () => {
    expect([...fixed(envExampleVariables())].sort()).toEqual([...code].sort());
  });

  it('both document the per-provider variables of FALLBACK_MODELS', () => {
    expect(readmeVariables().filter((name) => PER_PROVIDER.test(name))).not.toHaveLength(0);
    expect(envExampleVariables().filter((name) => PER_PROVIDER.test(name))).not.toHaveLength(0);
  });
});
