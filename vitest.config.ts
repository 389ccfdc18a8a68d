import { defineConfig } from 'vitest/config';

/**
 * Tests that start real processes (`npm run dev`, `npm start`, Chromium) or load the machine on purpose (1,000-request
 * bursts on a busy event loop): `npm test` runs them, `npm run test:fast` does not.
 */
const SLOW = ['tests/server.test.ts', 'tests/browser.test.ts', 'tests/burst.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['tests/support/global-redis.ts'],
    setupFiles: ['tests/support/per-file.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        // In-process tests share one module graph per worker: importing openai, ai and zod once instead of once
        // per file halves the wall time. Every file still passes alone, and per-file hooks live in the setup file.
        test: { name: 'fast', include: ['tests/**/*.test.ts'], exclude: SLOW, isolate: false },
      },
      // One file at a time: a burst that keeps the event loop busy on purpose must not starve a browser test.
      // Their own servers' start-up (`SERVER_START_MS` in tests/support/processes.ts) is in each test's time.
      { extends: true, test: { name: 'slow', include: SLOW, fileParallelism: false, testTimeout: 60_000 } },
    ],
  },
});
