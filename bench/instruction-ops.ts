/**
 * What `npm run bench -- --instructions` runs in each counted process (see bench/instructions.ts): the operations and
 * the child's loop. A module of its own, imported by the child's small entry (bench/instructions-child.ts), so that
 * the process callgrind runs loads the contenders and nothing else of the bench.
 * @module
 */
import type { Contender, Op } from './contenders.js';

export const INSTRUCTION_OPS: readonly { readonly name: string; readonly op: Op }[] = [
  { name: 'async () => 1', op: async () => 1 },
  { name: 'cross the event loop (setImmediate)', op: () => new Promise<void>((resolve) => setImmediate(resolve)) },
];

/**
 * The child's side (`instructions-child.mjs <contender> <op index> <calls>`): makes the contender's instance for the
 * op and runs `calls` serial calls. The process then exits, and callgrind prints what it counted.
 */
export async function runInstructionsChild(list: readonly Contender[], argv: readonly string[]): Promise<void> {
  const [name = '', opText = '', callsText = ''] = argv;
  const contender = list.find((c) => c.name === name);
  const op = INSTRUCTION_OPS[Number(opText)];
  const calls = Number(callsText);
  if (contender === undefined || op === undefined || !Number.isInteger(calls) || calls < 0) {
    throw new Error(`instructions-child <contender> <op index> <calls>: got ${JSON.stringify(argv)}`);
  }
  const instance = contender.make(op.op, 1_000);
  try {
    for (let i = 0; i < calls; i++) await instance.call();
  } finally {
    instance.dispose();
  }
}
