// Second round of tests killing mutants that survived `npm run mutation` in circuit-breaker/circuit-breaker.ts:
// a result reaches an outcome classifier as `{ ok: true, value }`, and only the results it names are failures.
import { describe, expect, it } from 'vitest';
import { circuitBreaker, handleOutcomes, handleResults, type Outcome } from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';

describe('circuitBreaker result classification (mutation, round 2)', () => {
  it('handleResults: a result it does not name is a success, one it names a failure', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      window: { kind: 'consecutive', threshold: 2 },
      handle: handleResults<number>((status) => status === 503),
      clock,
    });
    await expect(breaker.execute(() => 503)).resolves.toBe(503);
    await expect(breaker.execute(() => 200)).resolves.toBe(200); // resets the consecutive count
    await expect(breaker.execute(() => 503)).resolves.toBe(503);
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(() => 503)).resolves.toBe(503);
    expect(breaker.state).toBe('open');
  });

  it('handleOutcomes sees each result as { ok: true, value }', async () => {
    const clock = new FakeClock();
    const seen: Outcome<number>[] = [];
    const breaker = circuitBreaker({
      window: { kind: 'consecutive', threshold: 1 },
      handle: handleOutcomes<number>((o) => {
        seen.push(o);
        return o.ok ? o.value >= 500 : true;
      }),
      clock,
    });
    await expect(breaker.execute(() => 200)).resolves.toBe(200);
    await expect(breaker.execute(() => 204)).resolves.toBe(204);
    expect(seen).toEqual([
      { ok: true, value: 200 },
      { ok: true, value: 204 },
    ]);
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(() => 500)).resolves.toBe(500);
    expect(breaker.state).toBe('open');
  });
});
