// TypeDoc: the API reference, built from the TSDoc in src by `npm run docs:api` into docs/api/html/ (git-ignored;
// CI builds it on every run and fails on any warning). One entry point per package subpath: they are read from
// tsup.config.ts, so a new subpath is documented (and checked) as soon as it is built.
import { readFileSync } from 'node:fs';

const tsup = readFileSync(new URL('./tsup.config.ts', import.meta.url), 'utf8');
const block = /entry:\s*\{([^}]*)\}/.exec(tsup)?.[1];
if (block === undefined) throw new Error('typedoc.config.mjs: no `entry: { ... }` object found in tsup.config.ts');
const entryPoints = [...block.matchAll(/['"]?([\w-]+)['"]?\s*:\s*['"]([^'"]+)['"]/g)].map((m) => m[2]);
if (entryPoints.length === 0) throw new Error('typedoc.config.mjs: no entry points found in tsup.config.ts');

/** @type {Partial<import('typedoc').TypeDocOptions>} */
export default {
  name: 'bulwark',
  entryPoints,
  out: 'docs/api/html',
  tsconfig: 'tsconfig.json',
  // `npm run typecheck` checks the types; TypeDoc only reads them.
  skipErrorChecking: true,
  readme: 'none',
  // What the published types show: `@internal` members are stripped from them (tsup's stripInternal).
  excludeInternal: true,
  excludePrivate: true,
  excludeProtected: true,
  excludeExternals: true,
  sort: ['kind', 'instance-first', 'alphabetical-ignoring-documents'],
  // The checks CI relies on: a symbol used in the public API but not exported, a {@link} that resolves to nothing
  // or to something left out of the reference, an export without a comment; any warning fails the build.
  validation: { notExported: true, invalidLink: true, rewrittenLink: true, notDocumented: true },
  // "TSDoc on every export": every exported declaration (members are checked by review, not here).
  requiredToBeDocumented: ['Enum', 'Variable', 'Function', 'Class', 'Interface', 'TypeAlias'],
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true,
  githubPages: false,
  // No public repository URL yet: source links would point nowhere.
  disableSources: true,
};
