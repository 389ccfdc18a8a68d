import { afterAll } from 'vitest';
import { closeProxies } from './harness';
import { findLeaks } from './secret-scan';

// vitest runs this before every test file (also when files share one process, see vitest.config.ts), so these
// hooks belong to each file: hooks written at the top level of a shared module would attach to the first file only.

// Every proxy a test file built lets go of its Redis connection when the file ends.
afterAll(closeProxies);

// One leaked secret anywhere in the file's output fails the run.
afterAll(() => {
  const leaks = findLeaks();
  if (leaks.length > 0)
    throw new Error(`A secret appeared in the output of this test file:\n${leaks.join('\n')}`);
});
