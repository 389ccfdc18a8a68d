import { afterAll } from 'vitest';
import { findLeaks } from './secret-scan';

// Runs after every test file: one leaked secret anywhere in its output fails the run.
afterAll(() => {
  const leaks = findLeaks();
  if (leaks.length > 0)
    throw new Error(`A secret appeared in the output of this test file:\n${leaks.join('\n')}`);
});
