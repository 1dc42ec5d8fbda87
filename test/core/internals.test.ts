import { describe, expect, it } from 'vitest';
import { rootContext } from '../../src/core/context.js';
import { invoke } from '../../src/core/policy.js';
import { bulkhead, constant, retry, timeout } from '../../src/index.js';

// The guards below protect compositions where a policy is entered with an already-cancelled context (possible for
// any policy inside another that cancels). They are exercised directly through the internal `_run`.
describe('policies entered with an aborted context', () => {
  const aborted = () => {
    const ac = new AbortController();
    ac.abort('cancelled');
    return rootContext({ signal: ac.signal });
  };

  it('timeout rejects with the reason without running the operation', async () => {
    let ran = false;
    await expect(
      timeout(100)._run(
        aborted(),
        () => {
          ran = true;
        },
        invoke,
      ),
    ).rejects.toBe('cancelled');
    expect(ran).toBe(false);
  });

  it('a bulkhead with no free slot does not queue an aborted call', async () => {
    const b = bulkhead({ limit: 1, queue: 5 });
    const hold = b.execute(() => new Promise<void>((r) => setImmediate(r)));
    await expect(b._run(aborted(), () => 1, invoke)).rejects.toBe('cancelled');
    expect(b.queued).toBe(0);
    await hold;
  });
});

describe('context', () => {
  it('hands out one never-aborted signal per call, the same for every read and attempt', async () => {
    const signals: AbortSignal[] = [];
    await retry({ backoff: constant(0) }).execute(({ signal, attempt }) => {
      signals.push(signal, signal);
      if (attempt < 2) throw new Error('again');
    });
    expect(signals).toHaveLength(4);
    expect(new Set(signals).size).toBe(1);
    expect(signals[0]?.aborted).toBe(false);
    const other: AbortSignal[] = [];
    await retry().execute(({ signal }) => {
      other.push(signal);
    });
    expect(other[0]).not.toBe(signals[0]);
  });

  it('retry stops at once when the caller aborts between an attempt and its backoff', async () => {
    const ac = new AbortController();
    const policy = retry({ backoff: constant(1_000) });
    policy.on('retry.attempt', () => ac.abort('stop now'));
    let n = 0;
    await expect(
      policy.execute(
        () => {
          n++;
          throw new Error('x');
        },
        { signal: ac.signal },
      ),
    ).rejects.toBe('stop now');
    expect(n).toBe(1);
  });
});

describe('CancelScope listeners: one held as is, a Set from the second', () => {
  it('notifies each listener once, after any add/remove order', async () => {
    const { CancelScope: Scope } = await import('../../src/core/context.js');
    class S extends Scope {
      _expire(): void {}
      _onAbort(): void {}
    }
    const log: string[] = [];
    const l = (name: string) => ({ _onAbort: (r: unknown) => log.push(`${name}:${String(r)}`) });
    const [a, b, c] = [l('a'), l('b'), l('c')];
    const one = new S();
    one.addListener(a);
    one.addListener(a); // the same listener twice is held once
    one.abort('x');
    const many = new S();
    many.addListener(a);
    many.addListener(b);
    many.addListener(c);
    many.removeListener(a);
    many.abort('y');
    const none = new S();
    none.addListener(a);
    none.removeListener(a);
    none.removeListener(b); // never added
    none.abort('z');
    expect(log).toEqual(['a:x', 'b:y', 'c:y']);
  });
});
