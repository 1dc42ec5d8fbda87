/** A random source that returns the given draws in order and fails the test if asked for one more. */
export interface ScriptedRandom {
  (): number;
  /** Queues more draws. */
  push(...draws: number[]): void;
  /** How many draws were taken so far. */
  readonly taken: number;
  /** Draws queued and not taken yet. */
  readonly left: number;
}

export function scriptedRandom(...draws: number[]): ScriptedRandom {
  const queue = [...draws];
  let taken = 0;
  const fn = (() => {
    const d = queue.shift();
    if (d === undefined) throw new Error(`scriptedRandom: draw ${taken + 1} was not scripted`);
    taken++;
    return d;
  }) as ScriptedRandom;
  fn.push = (...more: number[]) => {
    queue.push(...more);
  };
  Object.defineProperty(fn, 'taken', { get: () => taken });
  Object.defineProperty(fn, 'left', { get: () => queue.length });
  return fn;
}
