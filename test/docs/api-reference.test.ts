import type { TypeDocOptions } from 'typedoc';
import { describe, expect, it } from 'vitest';
import tsup from '../../tsup.config.js';

const CONFIG = new URL('../../typedoc.config.mjs', import.meta.url).href;
const typedoc = ((await import(CONFIG)) as { default: Partial<TypeDocOptions> }).default;

describe('typedoc.config.mjs', () => {
  it('documents exactly the entry points tsup builds, one per package subpath', () => {
    const entry = (tsup as { entry: Record<string, string> }).entry;
    expect(typedoc.entryPoints).toEqual(Object.values(entry));
    expect(typedoc.entryPoints?.length).toBeGreaterThanOrEqual(7);
  });

  it('fails on every warning, with the link and export checks on', () => {
    expect(typedoc.treatWarningsAsErrors).toBe(true);
    expect(typedoc.validation).toMatchObject({ notExported: true, invalidLink: true, rewrittenLink: true });
  });
});
