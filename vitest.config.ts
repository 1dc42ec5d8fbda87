import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    globalSetup: ['test/helpers/nats-anchor.ts'],
    testTimeout: 20_000,
    coverage: {
      provider: 'v8',
      include: ['src/core/**', 'src/policies/**'],
      thresholds: {
        'src/core/**': { lines: 95, branches: 95 },
        'src/policies/**': { lines: 95, branches: 95 },
      },
    },
  },
});
