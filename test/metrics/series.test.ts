import { describe, expect, it } from 'vitest';
import { observe, resetSeries, SeriesStore } from '../../src/metrics/series.js';

/** A string equal to `s` but not the same string object (built at run time). */
const copy = (s: string) => [...s].join('');

describe('SeriesStore', () => {
  it('finds the same series for equal label values, whatever was asked in between', () => {
    const store = new SeriesStore(['policy', 'operation', 'event', '', ''], 0);
    const a = store.get('p', 'o', 'e', '', '');
    expect(store.get('p', 'o', 'e', '', '')).toBe(a);
    expect(store.get(copy('p'), copy('o'), copy('e'), '', '')).toBe(a);
    for (const [i, key] of (['policy', 'operation', 'event', 'x', 'y'] as const).entries()) {
      const values = ['p', 'o', 'e', '', ''];
      values[i] = `${values[i]}-${key}`;
      const other = store.get(...(values as [string, string, string, string, string]));
      expect(other).not.toBe(a);
      expect(store.get('p', 'o', 'e', '', '')).toBe(a);
      expect(store.get(...(values as [string, string, string, string, string]))).toBe(other);
    }
    expect(store.all).toHaveLength(6);
    expect(a.labels).toEqual({ policy: 'p', operation: 'o', event: 'e' });
  });

  it('clear() forgets the last series found too', () => {
    const store = new SeriesStore(['policy', '', '', '', ''], 0);
    const before = store.get('p', '', '', '', '');
    before.count = 5;
    store.clear();
    const after = store.get('p', '', '', '', '');
    expect(after).not.toBe(before);
    expect(after.count).toBe(0);
    expect(store.all).toEqual([after]);
  });

  it('counts past maxSeries in one overflow series, with the labels the maker gives it', () => {
    let warned = 0;
    const store = new SeriesStore<Record<string, string>>(
      { of: (a) => ({ name: a }), overflow: { overflow: 'yes' } },
      0,
      2,
      () => warned++,
    );
    store.get('a', '', '', '', '');
    store.get('b', '', '', '', '');
    expect(store.overflow).toBeUndefined();
    const c = store.get('c', '', '', '', '');
    expect(store.get('d', '', '', '', '')).toBe(c);
    expect(c).toBe(store.overflow);
    expect(c.labels).toEqual({ overflow: 'yes' });
    expect(store.all.map((s) => s.labels)).toEqual([{ name: 'a' }, { name: 'b' }, { overflow: 'yes' }]);
    expect(warned).toBe(1);
  });

  it('observe() counts a sample in the first bucket whose bound it does not exceed, and keeps min and max', () => {
    const store = new SeriesStore(['policy', '', '', '', ''], 3);
    const s = store.get('p', '', '', '', '');
    const bounds = [0.1, 1, 10];
    for (const v of [0.05, 0.1, 0.5, 1, 10, 11, 0.1]) observe(s, bounds, v);
    expect([...(s.buckets as Float64Array)]).toEqual([3, 2, 1, 1]);
    expect(s.count).toBe(7);
    expect(s.sum).toBeCloseTo(22.75, 10);
    expect([s.min, s.max]).toEqual([0.05, 11]);
    resetSeries(s, 1234);
    expect([...(s.buckets as Float64Array)]).toEqual([0, 0, 0, 0]);
    expect([s.count, s.sum, s.min, s.max, s.start]).toEqual([0, 0, Infinity, -Infinity, 1234]);
    expect(store.get('p', '', '', '', '')).toBe(s);
  });
});
