/**
 * The deopt suite's counter: what it reads from a child's --trace-deopt output and what it charges to bulwark.
 * The lines are as Node 20 (V8 11.3) and Node 24 (V8 13.6) print them.
 */
import { describe, expect, it } from 'vitest';
import { bulwarkNames, countDeopts, parseTrace } from '../../bench/suites/deopt.js';

const mark = (code: string, sfi: string, name: string, optId: number, reason = 'weak objects') =>
  `[marking dependent code ${code} <Code TURBOFAN> (${sfi} <SharedFunctionInfo${name === '' ? '' : ` ${name}`}>) (opt id ${optId}) for deoptimization, reason: ${reason}]`;
const bail = (sfi: string, name: string, optId: number, reason = '(unknown)') =>
  `[bailout (kind: deopt-lazy, reason: ${reason}): begin. deoptimizing 0x1c2452718201 <JSFunction ${name} (sfi = ${sfi})>, 0x0c46f2ad4c61 <Code TURBOFAN>, opt id ${optId}, bytecode offset 1126, deopt exit 19, FP to SP delta 88, caller SP 0x7ffd66102260, pc 0x7fae6a7dc5a8]`;

describe('parseTrace', () => {
  it('reads markings and bailouts, with nested angle brackets in a name and an empty name', () => {
    const out = [
      mark('0x01edd5f7ce11', '0x0c46f2af67c1', '<instance_members_initializer>', 4),
      '[marking dependent code 0x0be46d227a69 <Code MAGLEV> (0x0c79a1b0da41 <SharedFunctionInfo get _aborted>) (opt id 378) for deoptimization, reason: embedded weak objects cleared]',
      mark('0x0c46f2ac29f1', '0x0c46f2aeb571', '', 53),
      bail('0xc46f2aeb4d1', 'batch', 59),
      'BENCH-WARM',
    ].join('\n');
    expect(parseTrace(out)).toEqual([
      { name: '<instance_members_initializer>', sfi: 'c46f2af67c1', code: 'c46f2af67c1:4', reason: 'weak objects' },
      { name: 'get _aborted', sfi: 'c79a1b0da41', code: 'c79a1b0da41:378', reason: 'embedded weak objects cleared' },
      { name: '', sfi: 'c46f2aeb571', code: 'c46f2aeb571:53', reason: 'weak objects' },
      { name: 'batch', sfi: 'c46f2aeb4d1', code: 'c46f2aeb4d1:59', reason: '(unknown)' },
      { marker: 'BENCH-WARM' },
    ]);
  });

  it('still reads an entry that another thread cut in two (Node 24)', () => {
    const out =
      '[marking dependent code 0x141d1e5a5000 <Code TURBOFAN_JS> (0x237a5b24e000 <SharedFunctionInfo rootContext>' +
      '[marking dependent code 0x141d1e5a5969 <Code MAGLEV> (0x237a5b24e499 <SharedFunctionInfo get _aborted>) (opt id 7) for deoptimization, reason: embedded weak objects cleared]' +
      ') (opt id 6) for deoptimization, reason: embedded weak objects cleared]\n';
    expect(parseTrace(out).map((e) => ('name' in e ? e.name : e.marker))).toEqual(['rootContext', 'get _aborted']);
  });
});

describe('countDeopts', () => {
  const names = new Set(['_run', 'ref', 'CancelScope', '<instance_members_initializer>']);

  it('counts bulwark functions after the warm-up only, once per optimised code object', () => {
    const out = [
      mark('0x1', '0xd0', 'ref', 1),
      'BENCH-CONTROL-END',
      mark('0x2', '0xa0', '_run', 2), // during the warm-up: not counted
      'BENCH-WARM',
      mark('0x3', '0xa0', '_run', 3),
      bail('0xa0', '_run', 3), // the lazy bailout of the code just marked: the same deopt
      mark('0x4', '0xa0', '_run', 4),
      mark('0x5', '0xb0', '_run', 5), // another policy's _run
      mark('0x6', '0xc0', '<instance_members_initializer>', 6),
      'BENCH-END',
      mark('0x7', '0xa0', '_run', 7),
    ].join('\n');
    const r = countDeopts(out, names, 'op');
    expect(r).toMatchObject({ total: 4, functions: 3, maxPerFunction: 2, other: 0, markers: true });
    expect(r.offenders).toEqual([
      { name: '_run', functions: 2, count: 3, max: 2, reasons: ['weak objects'] },
      { name: '<instance_members_initializer>', functions: 1, count: 1, max: 1, reasons: ['weak objects'] },
    ]);
  });

  it("charges neither Node's functions seen in the bare control phase nor names bulwark does not define", () => {
    const out = [
      mark('0x1', '0xd0', 'ref', 1), // Node's timers `ref`, deoptimised by the bare op too
      mark('0x2', '0xd8', 'processImmediate', 2),
      'BENCH-CONTROL-END',
      'BENCH-WARM',
      mark('0x3', '0xd0', 'ref', 3),
      mark('0x4', '0xd0', 'ref', 4),
      mark('0x5', '0xd8', 'processImmediate', 5),
      mark('0x6', '0xe0', '', 6),
      mark('0x7', '0xf0', 'CancelScope', 7),
      'BENCH-END',
    ].join('\n');
    const r = countDeopts(out, names, 'op');
    expect(r).toMatchObject({ total: 1, functions: 1, maxPerFunction: 1, other: 4 });
    expect(r.otherTop).toEqual([
      { name: 'ref', count: 2 },
      { name: '(anonymous)', count: 1 },
      { name: 'processImmediate', count: 1 },
    ]);
  });

  it('says when the markers are missing', () => {
    expect(countDeopts(mark('0x1', '0xa0', '_run', 1), names, 'op').markers).toBe(false);
  });
});

describe('bulwarkNames', () => {
  it("collects what bulwark's sections of a bundle define, less the names the bench's sections define too", () => {
    const bundle = [
      '// src/core/context.ts',
      'var CancelScope = class {',
      '  #x = 1;',
      '  get _aborted() {',
      '  #hold(ctx) {',
      '  _run(ctx, op, next) {',
      'function rootContext() {',
      '    next = (ctx2, op2) => p._run(ctx2, op2, inner);',
      '    const call = (c) => handler(c);',
      'var _ExecutionContext = class _ExecutionContext2 {',
      '// bench/contenders.ts',
      'function policyInstance(p, op) {',
      '  return { call: () => p.execute(op), dispose: noop };',
    ].join('\n');
    const names = bulwarkNames(bundle);
    for (const n of [
      'CancelScope',
      'get _aborted',
      '#hold',
      '_run',
      'rootContext',
      'next',
      '_ExecutionContext',
      '_ExecutionContext2',
      '<instance_members_initializer>',
    ]) {
      expect(names).toContain(n);
    }
    expect(names).not.toContain('call');
    expect(names).not.toContain('policyInstance');
    expect(names).not.toContain('if');
  });
});
