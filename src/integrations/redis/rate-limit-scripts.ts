/**
 * The rate limiter's Lua scripts: the same arithmetic as the in-process stores (src/policies/rate-limit/store.ts),
 * on Redis, with Redis `TIME` as the clock. One script call is one decision: it reads the key, decides, writes the
 * key back with an expiry, and answers `{wait, available}` (as strings: Redis turns a Lua number into an integer).
 *
 * Why `TIME` inside the script: every process then decides on the same clock, whatever its own says; Redis 5+
 * replicates scripts by their effects (the writes), so a replica never re-runs `TIME`.
 * @module
 */

import { RedisScript } from './runner.js';

/**
 * Shared by both scripts: `now` in ms (with µs), the float noise allowed (1e-6 ms, as in store.ts), number
 * formatting that round-trips exactly, and a key's time to live as an integer string (Redis reads a Lua number
 * past 1e14 in exponent notation, which PX refuses), at most 1e14 ms (3,000 years).
 */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local EPS = 1e-6
local function num(x) return string.format('%.17g', x) end
local function ttl(ms)
  if ms < 1 then ms = 1 end
  if ms > 1e14 then ms = 1e14 end
  return string.format('%.0f', math.ceil(ms))
end
`;

/**
 * A token bucket stored as GCRA: one string key, the theoretical arrival time `tat` (Redis ms). KEYS[1]: the
 * key. ARGV: interval (ms per token), span (burst * interval), cost, maxWait (-1: no bound). The key expires when
 * `tat` is reached: past it the bucket is full, which is what a missing key means.
 * @internal
 */
export const TOKEN_BUCKET = new RedisScript(`${PRELUDE}
local interval = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local maxWait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local debt = 0
if tat > now then debt = tat - now end
local taken = cost * interval
local wait = debt + taken - span
if wait <= EPS then wait = 0 end
if wait == 0 or maxWait < 0 or wait <= maxWait then
  debt = debt + taken
  if debt > 0 then
    redis.call('SET', KEYS[1], num(now + debt), 'PX', ttl(debt))
  end
end
local avail = math.floor((span - debt) / interval + EPS)
if avail < 0 then avail = 0 end
return { num(wait), num(avail) }
`);

/**
 * A sliding window of `segments` segments (a fixed window: one), as one hash: field = segment index (on Redis
 * time), value = tokens taken (or reserved) in it. KEYS[1]: the key. ARGV: segmentMs, segments, limit, cost,
 * maxWait (-1: no bound). Fields that left the window are deleted at each call; the key expires when its newest
 * segment leaves the window.
 * @internal
 */
export const WINDOW = new RedisScript(`${PRELUDE}
local segMs = tonumber(ARGV[1])
local segments = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local maxWait = tonumber(ARGV[5])
local k = math.floor((now + EPS) / segMs)
local oldest = k - segments
local raw = redis.call('HGETALL', KEYS[1])
local idx = {}
local tokens = {}
local total = 0
local stale = {}
for i = 1, #raw, 2 do
  local s = tonumber(raw[i])
  local n = tonumber(raw[i + 1])
  if s <= oldest then
    stale[#stale + 1] = raw[i]
  else
    idx[#idx + 1] = s
    tokens[s] = n
    total = total + n
  end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
table.sort(idx)
local newest = k
if #idx > 0 and idx[#idx] > k then newest = idx[#idx] end
local at = newest
local need = total + cost - limit
if need > EPS then
  local freed = 0
  local h = 0
  while freed < need - EPS and h < #idx do
    h = h + 1
    freed = freed + tokens[idx[h]]
  end
  if h > 0 then
    local leaves = idx[h] + segments
    if leaves > at then at = leaves end
  end
end
local wait = 0
if at ~= k then wait = at * segMs - now end
local last = newest
if #idx > 0 and idx[#idx] > last then last = idx[#idx] end
if at == k or maxWait < 0 or wait <= maxWait then
  if cost > 0 then
    redis.call('HSET', KEYS[1], num(at), num((tokens[at] or 0) + cost))
    total = total + cost
  end
  if at > last then last = at end
end
if #idx > 0 or cost > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl((last + segments) * segMs - now))
end
local avail = 0
if last <= k then
  avail = math.floor(limit - total + EPS)
  if avail < 0 then avail = 0 end
end
return { num(wait), num(avail) }
`);
