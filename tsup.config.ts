import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    testing: 'src/testing/index.ts',
    undici: 'src/integrations/undici/index.ts',
    grpc: 'src/integrations/grpc/index.ts',
    messaging: 'src/integrations/messaging/index.ts',
    redis: 'src/integrations/redis/index.ts',
    opentelemetry: 'src/metrics/opentelemetry.ts',
    prometheus: 'src/metrics/prometheus.ts',
  },
  format: ['esm', 'cjs'],
  // Internal members (`_run`, `_events`, ...) and classes marked @internal stay out of the published types.
  dts: { compilerOptions: { stripInternal: true } },
  sourcemap: true,
  clean: true,
  treeshake: true,
  // Shared chunks: the subpath entries (bulwark/undici, ...) use the same copy of the core as `bulwark` itself.
  splitting: true,
  target: 'node20',
  platform: 'node',
  // Peers, never bundled. bulwark/messaging and bulwark/redis import no broker client at all (structural types, see nats-types.ts);
  // the broker clients stay external so that a stray import is never bundled (the one-client package test fails).
  external: [
    'undici',
    '@grpc/grpc-js',
    'amqplib',
    'nats',
    /^@nats-io\//,
    '@opentelemetry/api',
    'prom-client',
    'ioredis',
    'redis',
    /^@redis\//,
  ],
  // Keep class names: errors print as `CircuitOpenError`, not an esbuild-renamed `_CircuitOpenError`.
  keepNames: true,
});
