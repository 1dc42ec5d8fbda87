/**
 * Descriptions of thrown values that never throw: whatever an operation throws (`Object.create(null)`, an object
 * whose `toString`, `name` or `message` getter throws, a revoked `Proxy`, a Symbol, a BigInt, a string of
 * megabytes) must be describable in a header, a gRPC status or a log line without turning into a second error.
 *
 * @module
 */

/**
 * A short, one-line description of a thrown value for a header or a log line (`Name: message`), at most
 * `maxLength` characters (longer text is cut and ends with `…`). Total: it never throws, whatever was thrown
 * (`Object.create(null)`, an object whose `toString` or `message` getter throws, a revoked `Proxy`, a Symbol, a
 * BigInt, a string of megabytes).
 */
export function describeError(error: unknown, maxLength: number): string {
  return describe(error, maxLength, true);
}

/**
 * Like {@link describeError}, but an error's `message` alone when it has one (`'socket hang up'`, not
 * `'Error: socket hang up'`): for text that already says what failed, such as a warning or a gRPC status's details.
 */
export function describeMessage(error: unknown, maxLength: number): string {
  return describe(error, maxLength, false);
}

function describe(error: unknown, maxLength: number, withName: boolean): string {
  let text: string;
  try {
    text = describeUnsafe(error, maxLength, withName);
  } catch {
    // Only the type is safe to read now: a revoked Proxy throws on any other operation.
    text = `[unprintable ${typeof error}]`;
  }
  return oneLine(text, maxLength);
}

function describeUnsafe(error: unknown, max: number, withName: boolean): string {
  switch (typeof error) {
    case 'string':
      return error.slice(0, max + 1);
    case 'symbol':
      return error.toString();
    case 'bigint':
      return `${error.toString().slice(0, max)}n`;
    case 'object':
      if (error === null) return 'null';
      break;
    case 'function':
      break;
    default:
      return String(error);
  }
  // An object: every read may run user code (getters, Proxy traps) and throw; each is guarded on its own, so what
  // can be read is.
  let name: unknown;
  let message: unknown;
  try {
    name = (error as { name?: unknown }).name;
  } catch {
    name = undefined;
  }
  try {
    message = (error as { message?: unknown }).message;
  } catch {
    message = undefined;
    if (typeof name === 'string' && name !== '') return `${name.slice(0, max)}: [message unreadable]`;
  }
  const label = typeof name === 'string' && name !== '' ? name.slice(0, max) : undefined;
  if (typeof message === 'string') {
    const m = message.slice(0, max + 1);
    if (label === undefined || (!withName && m !== '')) return m;
    return m === '' ? label : `${label}: ${m}`;
  }
  let text: string | undefined;
  try {
    text = String(error);
  } catch {
    text = undefined;
  }
  if (text === undefined || text === '[object Object]') {
    try {
      // A plain object thrown as an error ({ code: 'E_X' }), or one String() cannot convert (a null prototype):
      // its fields say more than its type.
      const json: unknown = JSON.stringify(error);
      if (typeof json === 'string') text = json;
    } catch {
      // keep what String() gave, if anything
    }
  }
  if (text !== undefined) return text;
  return label !== undefined ? label : `[unprintable ${typeof error}]`;
}

/** Control characters become spaces (a header or a log line stays one line); cut to `max` with an ellipsis. */
function oneLine(text: string, max: number): string {
  let t = text.length > max ? text.slice(0, Math.max(0, max - 1)) : text;
  // Do not leave half of a surrogate pair at the cut.
  if (t.length > 0 && t.length < text.length) {
    const last = t.charCodeAt(t.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) t = t.slice(0, -1);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
  t = t.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return t.length < text.length ? `${t}…` : t;
}
