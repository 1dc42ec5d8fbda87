import { describe, expect, it } from 'vitest';
import { ExecutionContext } from '../../src/core/context.js';
import { PromiseReporter, type Reporter, type ReportingCaller } from '../../src/core/policy.js';
import { bulkhead, circuitBreaker, constant, pipeline, retry, timeout } from '../../src/index.js';
import type { PolicyBase } from '../../src/policies/policy-base.js';

/**
 * A reporting caller (how the undici and gRPC interceptors run a policy): each attempt is begun through `_begin`
 * and reports by callback; `outcome` is reported once, asynchronously.
 */
class Caller implements ReportingCaller {
  readonly outcomes: [boolean, unknown][] = [];
  begun = 0;
  inBegin = false;
  readonly pending: Reporter[] = [];
  constructor(readonly answer: (attempt: number) => [boolean, unknown] | 'hold') {}
  _begin(_ctx: ExecutionContext, to: Reporter): void {
    this.begun++;
    const a = this.answer(this.begun);
    if (a === 'hold') this.pending.push(to);
    else queueMicrotask(() => to._report(a[0], a[1]));
  }
  _report(ok: boolean, value: unknown): void {
    this.outcomes.push([ok, value]);
  }
  /** The operation as a promise, for a policy that runs it layered (or the retry loop's later attempts). */
  readonly op = (ctx: unknown) =>
    new Promise((resolve, reject) => this._begin(ctx as ExecutionContext, new PromiseReporter(resolve, reject)));
}

const run = (p: PolicyBase, c: Caller) => {
  p._executeReporting(new ExecutionContext(undefined, 'op', undefined, 1, undefined, undefined), c.op, c);
  expect(c.outcomes).toEqual([]); // never reported from within the call that started it
};
const settle = () => new Promise((r) => setTimeout(r, 5));

describe('fused pipelines run for a reporting caller', () => {
  it('reports a success once, through the fused call, with no promise of the caller', async () => {
    const p = pipeline(retry({ maxAttempts: 3 }), circuitBreaker(), timeout(1_000), bulkhead({ limit: 2 }));
    const c = new Caller(() => [true, 'v']);
    run(p, c);
    await settle();
    expect(c.outcomes).toEqual([[true, 'v']]);
    expect(c.begun).toBe(1);
  });

  it('retries a failure (attempts 2.. as promises) and reports the final outcome once', async () => {
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant(0) }), timeout(1_000));
    const c = new Caller((n) => (n < 3 ? [false, new Error(`e${n}`)] : [true, n]));
    run(p, c);
    await settle();
    expect(c.outcomes).toEqual([[true, 3]]);
  });

  it('reports a full bulkhead asynchronously, and a caller with no retry gets the failure', async () => {
    const p = pipeline(timeout(1_000), bulkhead({ limit: 1, queue: 0 }));
    const held = new Caller(() => 'hold');
    run(p, held);
    const refused = new Caller(() => [true, 1]);
    run(p, refused);
    await settle();
    expect(refused.begun).toBe(0);
    expect(refused.outcomes).toHaveLength(1);
    expect((refused.outcomes[0] as [boolean, unknown])[0]).toBe(false);
    held.pending[0]?._report(true, 'late');
    await settle();
    expect(held.outcomes).toEqual([[true, 'late']]);
  });

  it('times out an attempt that never reports, and ignores its late report', async () => {
    const p = pipeline(timeout(5), bulkhead({ limit: 1 }));
    const c = new Caller(() => 'hold');
    run(p, c);
    await new Promise((r) => setTimeout(r, 40));
    expect(c.outcomes).toHaveLength(1);
    expect((c.outcomes[0] as [boolean, unknown])[0]).toBe(false);
    c.pending[0]?._report(true, 'late');
    await settle();
    expect(c.outcomes).toHaveLength(1);
  });

  it('runs layered (through the promise form) when the breaker is open, and a plain policy too', async () => {
    const b = circuitBreaker({ minimumCalls: 1, failureRate: 0.5, window: { kind: 'count', size: 1 } });
    const p = pipeline(b, timeout(1_000));
    const f = new Caller(() => [false, new Error('x')]);
    run(p, f);
    await settle();
    expect(b.state).toBe('open');
    const c = new Caller(() => [true, 1]);
    run(p, c);
    await settle();
    expect(c.begun).toBe(0);
    expect((c.outcomes[0] as [boolean, unknown])[0]).toBe(false);
    const plain = new Caller(() => [true, 2]);
    run(timeout(1_000), plain);
    await settle();
    expect(plain.outcomes).toEqual([[true, 2]]);
  });
});
