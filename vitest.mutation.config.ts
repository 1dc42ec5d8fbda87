import { defineConfig } from 'vitest/config';

// Test set for mutation runs (`npm run mutation`, see docs/mutation-testing.md): the fast unit and property
// tests of src/core and src/policies, with no network peer, no GC probe and no child process. Stryker runs
// this set once per mutant (only the tests that cover it), so every second here costs minutes there.
export default defineConfig({
  test: {
    include: [
      'test/core/**/*.test.ts',
      'test/policies/**/*.test.ts',
      'test/properties/{backoff,bulkhead,circuit-breaker}.prop.test.ts',
      'test/issues/**/*.test.ts',
      'test/errors/**/*.test.ts',
      'test/events/**/*.test.ts',
      'test/testing/**/*.test.ts',
    ],
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 20_000,
  },
});
