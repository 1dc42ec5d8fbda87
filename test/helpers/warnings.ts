/**
 * Process warnings in tests. A test that provokes a warning on purpose captures it with `captureWarnings()` and
 * asserts it; nothing reaches stderr. Any other warning fails the test that emitted it (the guard installed by
 * test/helpers/setup.ts), so a new warning is never just noise in the CI log.
 */

/** A warning as `process.emitWarning` was asked to emit it. */
export interface CapturedWarning {
  /** The warning's name: its `type` option (`'BulwarkListenerWarning'`), or `'Warning'`. */
  readonly name: string;
  readonly code: string | undefined;
  readonly message: string;
}

/** Reads `process.emitWarning(warning, type | options, code)` the way Node does. */
export function describeWarning(warning: string | Error, options?: unknown, code?: unknown): CapturedWarning {
  if (warning instanceof Error) {
    const c = (warning as Error & { code?: unknown }).code;
    return { name: warning.name, code: typeof c === 'string' ? c : undefined, message: warning.message };
  }
  if (typeof options === 'object' && options !== null) {
    const o = options as { type?: unknown; code?: unknown };
    return {
      name: typeof o.type === 'string' ? o.type : 'Warning',
      code: typeof o.code === 'string' ? o.code : undefined,
      message: String(warning),
    };
  }
  return {
    name: typeof options === 'string' ? options : 'Warning',
    code: typeof code === 'string' ? code : undefined,
    message: String(warning),
  };
}

type Sink = (w: CapturedWarning) => void;
const sinks: Sink[] = [];

/**
 * The innermost active capture, if any: the guard in setup.ts hands it every warning. @internal to the helpers.
 */
export function activeSink(): Sink | undefined {
  return sinks.at(-1);
}

/**
 * Captures every process warning emitted until `stop()`, instead of printing it, for the test to assert.
 *
 * @example
 * ```ts
 * const warnings = captureWarnings();
 * try {
 *   await policy.execute(op); // a listener throws
 *   expect(warnings.codes()).toEqual(['BULWARK_LISTENER_THREW']);
 * } finally {
 *   warnings.stop();
 * }
 * ```
 */
export function captureWarnings() {
  const seen: CapturedWarning[] = [];
  const sink: Sink = (w) => seen.push(w);
  sinks.push(sink);
  return {
    warnings: seen,
    names: () => seen.map((w) => w.name),
    codes: () => seen.map((w) => w.code),
    messages: () => seen.map((w) => w.message),
    stop: () => {
      const i = sinks.lastIndexOf(sink);
      if (i >= 0) sinks.splice(i, 1);
    },
    /** Lets a warning emitted from a callback on the next turn arrive before asserting. */
    flush: () => new Promise<void>((r) => setImmediate(r)),
  };
}
