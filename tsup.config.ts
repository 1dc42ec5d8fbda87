import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    testing: 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  treeshake: true,
  splitting: false,
  target: 'node20',
  platform: 'node',
  // Keep class names: errors print as `CircuitOpenError`, not an esbuild-renamed `_CircuitOpenError`.
  keepNames: true,
});
