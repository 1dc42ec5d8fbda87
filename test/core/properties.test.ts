import { describe, expect, it } from 'vitest';
import { Properties, PropertyKey, pipeline, retry, timeout } from '../../src/index.js';

describe('properties and context', () => {
  it('is a typed bag shared by every policy and attempt of one call', async () => {
    const TENANT = new PropertyKey<string>('tenant');
    const SEEN = new PropertyKey<number[]>('seen');
    const props = new Properties().set(TENANT, 'acme').set(SEEN, []);
    expect(props.size).toBe(2);
    expect(props.has(TENANT)).toBe(true);
    expect(TENANT.description).toBe('tenant');
    let n = 0;
    const result = await pipeline(retry({ backoff: () => 0 }), timeout(1_000)).execute(
      (ctx) => {
        ctx.properties.getOr(SEEN, []).push(ctx.attempt);
        if (++n < 2) throw new Error('again');
        return `${ctx.properties.get(TENANT)}:${ctx.operation}`;
      },
      { properties: props, operation: 'get-tenant' },
    );
    expect(result).toBe('acme:get-tenant');
    expect(props.get(SEEN)).toEqual([1, 2]);
    expect(props.delete(TENANT)).toBe(true);
    expect(props.getOr(TENANT, 'none')).toBe('none');
  });

  it('creates the bag lazily and defaults the operation name', async () => {
    const KEY = new PropertyKey<number>('k');
    const out = await retry().execute((ctx) => {
      ctx.properties.set(KEY, 7);
      return [ctx.operation, ctx.properties.get(KEY), ctx.attempt, ctx.signal.aborted] as const;
    });
    expect(out).toEqual(['default', 7, 1, false]);
  });
});
