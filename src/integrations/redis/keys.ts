/**
 * Redis key names for bulwark/redis: a prefix, then one hash tag holding the policy's name (and the call's key,
 * for a per-tenant limit), so that all the keys one script touches land in one Redis Cluster slot.
 * @module
 */

import { createHash } from 'node:crypto';

/**
 * The longest name or key (in UTF-16 code units) put into a Redis key as it is; a longer one is replaced by its
 * SHA-256. Why: keys of kilobytes cost memory and bandwidth on every call, and a hostile tenant id must not
 * make them.
 * @internal
 */
export const MAX_RAW_KEY_PART = 200;

/** A lone surrogate: such a string is not valid UTF-16, and its UTF-8 encoding would be lossy (two keys in one). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** What is escaped: `%` (the escape itself), the hash tag's braces, and `:` (the separator of the parts). */
const SPECIAL = /[%{}:]/g;
const ESCAPES: Readonly<Record<string, string>> = { '%': '%25', '{': '%7B', '}': '%7D', ':': '%3A' };

/**
 * One part of a key (a policy name, a tenant id), made safe: one-to-one, so two different inputs never share a
 * Redis key. `%`, `{`, `}` and `:` are escaped as `%25`, `%7B`, `%7D`, `%3A` (braces would end the hash tag early,
 * and a `:` would let `a:b` + `c` meet `a` + `b:c`); a part longer than {@link MAX_RAW_KEY_PART} or not valid
 * UTF-16 becomes `%#` and the SHA-256 of its UTF-16 code units (`%#` is never the output of the escaping).
 * @internal
 * @example `keyPart('acme:{eu}') // 'acme%3A%7Beu%7D'`
 */
export function keyPart(part: string): string {
  if (part.length > MAX_RAW_KEY_PART || LONE_SURROGATE.test(part)) {
    return `%#${createHash('sha256').update(Buffer.from(part, 'utf16le')).digest('base64url')}`;
  }
  return part.replace(SPECIAL, (c) => ESCAPES[c] as string);
}

/**
 * The common start of every key of one policy (and one call key): `prefix{name}` or `prefix{name:key}`, the hash
 * tag being everything in the braces. A script's keys add a suffix after it (`:tb`, `:w`): all in one slot.
 * @internal
 * @example `slotKey('bulwark:rl:', 'api', 'acme') // 'bulwark:rl:{api:acme}'`
 */
export function slotKey(prefix: string, name: string, key: string | undefined): string {
  return key === undefined ? `${prefix}{${keyPart(name)}}` : `${prefix}{${keyPart(name)}:${keyPart(key)}}`;
}
