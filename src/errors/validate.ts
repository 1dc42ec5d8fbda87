import { InvalidOptionsError, type OptionProblem } from './errors.js';

/** Prints a received option value for an error message, briefly and safely: it never throws. */
export function describe(value: unknown): string {
  try {
    return describeValue(value);
  } catch {
    return 'an unprintable value'; // a revoked proxy, say
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return 'an object';
  }
}

/**
 * Collects every problem in a policy's options, then throws one {@link InvalidOptionsError} listing them all.
 * @internal
 */
export class Checker {
  readonly problems: OptionProblem[] = [];
  readonly #policy: string;

  constructor(policy: string) {
    this.#policy = policy;
  }

  fail(option: string, value: unknown, expected: string): void {
    this.problems.push({ option, received: describe(value), expected });
  }

  /**
   * The options must be a plain object (or undefined) with only the allowed keys. Returns false, so the caller
   * checks nothing more in it, when it is not an object or when reading one of its allowed options throws (a
   * getter, a proxy): each such option is reported instead of the getter's error escaping.
   */
  object(path: string, value: unknown, allowed: readonly string[]): value is Record<string, unknown> {
    if (value === undefined) return false;
    const where = (key: string) => (path ? `${path}.${key}` : key);
    if (typeof value !== 'object' || value === null || isArray(value)) {
      this.fail(path || 'options', value, 'an object');
      return false;
    }
    const record = value as Record<string, unknown>;
    let keys: string[];
    try {
      keys = Object.keys(record);
    } catch (error) {
      this.fail(
        path || 'options',
        value,
        `an object whose options can be listed (listing them threw ${errorText(error)})`,
      );
      return false;
    }
    for (const key of keys) {
      if (!allowed.includes(key)) {
        this.problems.push({
          option: where(key),
          received: describeOption(record, key),
          expected: `a known option (unknown name; allowed: ${allowed.join(', ')})`,
        });
      }
    }
    let readable = true;
    for (const key of allowed) {
      try {
        void record[key];
      } catch (error) {
        this.problems.push({
          option: where(key),
          received: `a getter that threw ${errorText(error)}`,
          expected: 'a value that can be read (not a getter that throws)',
        });
        readable = false;
      }
    }
    return readable;
  }

  /** A number in [min, max] (inclusive unless `exclusiveMin`); `integer` requires a whole number. */
  number(
    option: string,
    value: unknown,
    spec: { min?: number; max?: number; exclusiveMin?: boolean; integer?: boolean; infinity?: boolean },
  ): boolean {
    if (value === undefined) return false;
    const min = spec.min ?? Number.NEGATIVE_INFINITY;
    const max = spec.max ?? Number.POSITIVE_INFINITY;
    const what = `${spec.integer ? 'an integer' : 'a number'} ${rangeText(min, max, spec.exclusiveMin === true)}${spec.infinity ? ' or Infinity' : ''}`;
    if (typeof value !== 'number' || Number.isNaN(value)) {
      this.fail(option, value, what);
      return false;
    }
    if (value === Number.POSITIVE_INFINITY) {
      if (spec.infinity) return true;
      this.fail(option, value, what);
      return false;
    }
    const okRange = (spec.exclusiveMin ? value > min : value >= min) && value <= max && Number.isFinite(value);
    if (!okRange || (spec.integer && !Number.isInteger(value))) {
      this.fail(option, value, what);
      return false;
    }
    return true;
  }

  string(option: string, value: unknown): boolean {
    if (value === undefined) return false;
    if (typeof value !== 'string' || value.length === 0) {
      this.fail(option, value, 'a non-empty string');
      return false;
    }
    return true;
  }

  fn(option: string, value: unknown): boolean {
    if (value === undefined) return false;
    if (typeof value !== 'function') {
      this.fail(option, value, 'a function');
      return false;
    }
    return true;
  }

  oneOf(option: string, value: unknown, allowed: readonly string[]): boolean {
    if (value === undefined) return false;
    if (typeof value !== 'string' || !allowed.includes(value)) {
      this.fail(option, value, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
      return false;
    }
    return true;
  }

  /** A clock: an object with `now`, `setTimeout` and `clearTimeout` functions. */
  clock(option: string, value: unknown): boolean {
    if (value === undefined) return false;
    const c = value as Record<string, unknown> | null;
    const ok = () =>
      typeof c === 'object' &&
      c !== null &&
      typeof c.now === 'function' &&
      typeof c.setTimeout === 'function' &&
      typeof c.clearTimeout === 'function' &&
      (c.setRef === undefined || typeof c.setRef === 'function');
    let isClock: boolean;
    try {
      isClock = ok();
    } catch {
      isClock = false; // a getter that throws: not a clock
    }
    if (!isClock) {
      this.fail(option, value, 'a Clock (an object with now(), setTimeout() and clearTimeout())');
      return false;
    }
    return true;
  }

  /** Throws if any problem was found. */
  done(): void {
    if (this.problems.length > 0) throw new InvalidOptionsError(this.#policy, this.problems);
  }
}

/** Describes an option's value; a getter that throws is described, not rethrown. */
function describeOption(record: Record<string, unknown>, key: string): string {
  let value: unknown;
  try {
    value = record[key];
  } catch (error) {
    return `a getter that threw ${errorText(error)}`;
  }
  return describe(value);
}

/** What a getter threw, for a message: its message if it has one, never a second throw. */
function errorText(error: unknown): string {
  try {
    const m = (error as { message?: unknown } | null)?.message;
    return typeof m === 'string' ? JSON.stringify(m.length > 60 ? `${m.slice(0, 57)}...` : m) : describe(error);
  } catch {
    return 'something unprintable';
  }
}

/** `Array.isArray`, where a revoked proxy counts as an array (it throws; it is no options object either). */
function isArray(value: object): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return true;
  }
}

function rangeText(min: number, max: number, exclusiveMin: boolean): string {
  const lo = Number.isFinite(min) ? `${exclusiveMin ? '>' : '>='} ${min}` : '';
  const hi = Number.isFinite(max) ? `<= ${max}` : '';
  if (lo && hi) return `${exclusiveMin ? `in (${min}, ${max}]` : `in [${min}, ${max}]`}`;
  return lo || hi;
}
