import { defineConfig } from 'vitest/config';

// The undici integration's tests once more, against undici 8 (the dev dependency `undici8`, an npm alias of
// undici@8): every `import ... from 'undici'`, in src/ and in the tests, resolves to undici 8 here. The default
// config (vitest.config.ts) covers undici 7. undici 8 needs Node >= 22.19: CI runs this on Node 24 (.ci/run):
//   npx -y node@24 ./node_modules/vitest/vitest.mjs run --config vitest.undici8.config.ts
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  throw new Error(
    `vitest.undici8.config.ts: undici 8 needs Node >= 22.19 and this is Node ${process.versions.node}; run it with npx -y node@24 ./node_modules/vitest/vitest.mjs run --config vitest.undici8.config.ts`,
  );
}

export default defineConfig({
  resolve: { alias: [{ find: /^undici(\/.*)?$/, replacement: 'undici8$1' }] },
  test: {
    include: ['test/integrations/undici/**/*.test.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 20_000,
    // Read by test/integrations/undici/major.test.ts: the suite checks it runs against the major it claims to.
    env: { BULWARK_UNDICI_MAJOR: '8' },
  },
});
