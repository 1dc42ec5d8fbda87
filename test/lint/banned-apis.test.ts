import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Time and randomness are injected (DESIGN.md, principle 4): only the clock and random modules may touch the
 * real clock, timers or Math.random.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');
const ALLOWED = new Set(['src/core/clock.ts', 'src/core/random.ts']);

/**
 * What is banned. Member access counts only on the global objects: `this._clock.setTimeout(...)` and a method
 * named `setTimeout` in a class are fine, `setTimeout(...)` and `globalThis.setTimeout(...)` are not.
 */
const BANNED: readonly { readonly name: string; readonly pattern: RegExp }[] = [
  { name: 'Date.now', pattern: /(?<![\w$.])(?:(?:globalThis|global)\s*\.\s*)?Date\s*\.\s*now(?![\w$])/g },
  {
    name: 'performance.now',
    pattern: /(?<![\w$.])(?:(?:globalThis|global)\s*\.\s*)?performance\s*\.\s*now(?![\w$])/g,
  },
  { name: 'Math.random', pattern: /(?<![\w$.])(?:(?:globalThis|global)\s*\.\s*)?Math\s*\.\s*random(?![\w$])/g },
  { name: 'setTimeout', pattern: /(?<![\w$.])(?:(?:globalThis|global)\s*\.\s*)?setTimeout(?![\w$])/g },
  { name: 'setInterval', pattern: /(?<![\w$.])(?:(?:globalThis|global)\s*\.\s*)?setInterval(?![\w$])/g },
];

/**
 * Blanks out comments, and the contents of string and template literals (a message that mentions setTimeout is
 * not a call), keeping every newline so line numbers stay right. `${...}` inside templates is code and is kept.
 */
function stripCommentsAndStrings(source: string): string {
  let out = '';
  let i = 0;
  const n = source.length;
  // Stack of open template literals: each entry counts the braces opened inside its current `${ }`.
  const templates: number[] = [];
  const blank = (s: string): string => s.replace(/[^\n]/g, ' ');
  while (i < n) {
    const c = source[i] as string;
    const next = source[i + 1];
    const inTemplateExpr = templates.length > 0;
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      out += blank(source.slice(i, stop));
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      out += blank(source.slice(i, stop));
      i = stop;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n && source[j] !== c && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
      out += c + blank(source.slice(i + 1, j)) + (j < n ? (source[j] as string) : '');
      i = j + 1;
    } else if (c === '`' || (c === '}' && inTemplateExpr && templates[templates.length - 1] === 0)) {
      // Start of a template, or the end of a `${ }` that resumes one: scan literal text up to '`' or '${'.
      if (c === '}') templates.pop();
      let j = i + 1;
      while (j < n && source[j] !== '`' && !(source[j] === '$' && source[j + 1] === '{')) {
        j += source[j] === '\\' ? 2 : 1;
      }
      out += c + blank(source.slice(i + 1, j));
      if (j < n && source[j] === '$') {
        out += '${';
        templates.push(0);
        i = j + 2;
      } else {
        out += j < n ? '`' : '';
        i = j + 1;
      }
    } else {
      if (inTemplateExpr && c === '{')
        templates[templates.length - 1] = (templates[templates.length - 1] as number) + 1;
      if (inTemplateExpr && c === '}')
        templates[templates.length - 1] = (templates[templates.length - 1] as number) - 1;
      out += c;
      i++;
    }
  }
  return out;
}

/** Index just past the bracket that closes the one at `open` (or the end of `code`). */
function closing(code: string, open: number): number {
  const pairs: Record<string, string> = { '(': ')', '<': '>' };
  const o = code[open] as string;
  const c = pairs[o] as string;
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === o) depth++;
    else if (code[i] === c && --depth === 0) return i + 1;
  }
  return code.length;
}

/**
 * Whether the identifier ending at `end` is a member name being declared rather than a reference: a key or
 * property signature (`setTimeout: ...`, `setTimeout?: ...`) or a method (`setTimeout(cb: F): H {` / `;`).
 */
function isDeclaredName(code: string, end: number): boolean {
  let i = end;
  while (/\s/.test(code[i] ?? '')) i++;
  if (code[i] === ':' || (code[i] === '?' && code[i + 1] === ':')) return true;
  if (code[i] === '<') i = closing(code, i);
  while (/\s/.test(code[i] ?? '')) i++;
  if (code[i] !== '(') return false;
  i = closing(code, i);
  while (/\s/.test(code[i] ?? '')) i++;
  return code[i] === '{' || code[i] === ':';
}

/** Every `file:line: api: source line` where a banned API is used in `source`. */
function findBanned(file: string, source: string): string[] {
  const code = stripCommentsAndStrings(source);
  const sourceLines = source.split('\n');
  const hits: { index: number; text: string }[] = [];
  for (const { name, pattern } of BANNED) {
    for (const m of code.matchAll(pattern)) {
      const end = m.index + m[0].length;
      if ((name === 'setTimeout' || name === 'setInterval') && isDeclaredName(code, end)) continue;
      const line = code.slice(0, m.index).split('\n').length;
      hits.push({ index: m.index, text: `${file}:${line}: ${name}: ${(sourceLines[line - 1] ?? '').trim()}` });
    }
  }
  return hits.sort((a, b) => a.index - b.index).map((h) => h.text);
}

function tsFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...tsFiles(path));
    else if (entry.isFile() && entry.name.endsWith('.ts')) files.push(path);
  }
  return files;
}

describe('banned APIs in src/', () => {
  it('Date.now, performance.now, setTimeout, setInterval and Math.random appear only in the clock and random modules', () => {
    const files = tsFiles(SRC);
    expect(files.length).toBeGreaterThan(10);
    const hits: string[] = [];
    for (const path of files) {
      const file = relative(ROOT, path).split(sep).join('/');
      if (ALLOWED.has(file)) continue;
      hits.push(...findBanned(file, readFileSync(path, 'utf8')));
    }
    expect(hits, `banned APIs outside ${[...ALLOWED].join(' and ')}:\n${hits.join('\n')}`).toEqual([]);
  });

  it('the allowed modules really are where the clock and randomness live (the scan sees them)', () => {
    expect(findBanned('clock.ts', readFileSync(join(SRC, 'core/clock.ts'), 'utf8')).length).toBeGreaterThan(0);
    expect(findBanned('random.ts', readFileSync(join(SRC, 'core/random.ts'), 'utf8')).length).toBeGreaterThan(0);
  });

  it('the scanner flags real uses with file:line and ignores comments, strings and member methods', () => {
    const sample = [
      '// setTimeout(() => {}, 1) in a line comment',
      '/* Date.now() in a block comment',
      '   Math.random() still in it */',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a sample source file.
      "const msg = 'call setTimeout later'; const t = `performance.now is ${'banned'}`;",
      'this._clock.setTimeout(cb, 10); clock.now();',
      'class C { setTimeout(cb: () => void): void {} }',
      'interface K { setTimeout(cb: () => void, ms: number): unknown; setInterval?: number }',
      'const o = { setTimeout(cb: () => void) { return cb; }, setInterval: 1 };',
      'const a = Date.now();',
      'const b = globalThis.setTimeout(cb, 1);',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a sample source file.
      'const c = `${Math.random()}`;',
      'setInterval(tick, 5); // and a comment',
      'const d = performance . now();',
      'const url = "http://example.com"; const e = 1; /* ok */ const f = Date.now;',
      'const timers = { setTimeout, clearTimeout };',
      'setTimeout(',
      '  () => {},',
      '  1,',
      ');',
    ].join('\n');
    expect(findBanned('sample.ts', sample)).toEqual([
      'sample.ts:9: Date.now: const a = Date.now();',
      'sample.ts:10: setTimeout: const b = globalThis.setTimeout(cb, 1);',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a sample source file.
      'sample.ts:11: Math.random: const c = `${Math.random()}`;',
      'sample.ts:12: setInterval: setInterval(tick, 5); // and a comment',
      'sample.ts:13: performance.now: const d = performance . now();',
      'sample.ts:14: Date.now: const url = "http://example.com"; const e = 1; /* ok */ const f = Date.now;',
      'sample.ts:15: setTimeout: const timers = { setTimeout, clearTimeout };',
      'sample.ts:16: setTimeout: setTimeout(',
    ]);
  });
});
