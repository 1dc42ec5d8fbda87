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
  // Incremental mode is opt-in (`npm run mutation -- --incremental`, reusing reports/stryker-incremental.json,
  // which is not committed): see docs/mutation-testing.md for why the documented score comes from a full run.
  incremental: false,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0 },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // break: the score of the last full run (95.72% on 2026-12-06, after issues 11 and 12 merged), floored, so it
  // can only rise. Raise it when you kill more.
  thresholds: { high: 95, low: 90, break: 95 },
};
