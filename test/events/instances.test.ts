import { describe, expect, it } from 'vitest';
import { liveInstances } from '../../src/events/instances.js';
import { bulkhead, circuitBreaker, retry } from '../../src/index.js';

describe('live instance registry', () => {
  it('tracks every breaker and bulkhead (and nothing else), by kind', () => {
    const cb = circuitBreaker({ name: 'registry-cb' });
    const bh = bulkhead({ limit: 1, name: 'registry-bh' });
    retry({ name: 'registry-retry' });
    const found = [...liveInstances()]
      .map((e) => ({ kind: e.kind, policy: e.ref.deref() }))
      .filter((e) => e.policy === cb || e.policy === bh || (e.policy as { name?: string })?.name === 'registry-retry');
    expect(found).toEqual([
      { kind: 'circuit_breaker', policy: cb },
      { kind: 'bulkhead', policy: bh },
    ]);
  });

  it('is one set per process, shared by every copy of bulwark', () => {
    expect(liveInstances()).toBe((globalThis as Record<symbol, unknown>)[Symbol.for('bulwark.instances.v1')]);
  });
});
