// @ts-check
// Mutation testing of src/core and src/policies (issue 11). Run: `npm run mutation`.
// What is mutated, what is left out and why, the score and the survivors: docs/mutation-testing.md.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: [
    'src/core/**/*.ts',
    'src/policies/**/*.ts',
    // Type-only files (no runtime code) and re-export barrels: nothing a test could observe.
    '!src/core/outcome.ts',
    '!src/policies/*/events.ts',
    '!src/policies/*/index.ts',
  ],
  coverageAnalysis: 'perTest',
  // The machine is shared: two test processes at most.
  concurrency: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0 },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 95, low: 90, break: null },
};
