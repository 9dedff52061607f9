"""The Redis store's Lua scripts: each one atomic step, one round trip.

Every script carries a ``#!lua`` shebang, so Redis (7.0+) refuses it as a whole when it is
out of memory instead of failing after its first writes; and every script reads and
checks before it writes, so no script leaves half its work behind.
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "ACK_MANY",
    "ACQUIRE_LEASES",
    "CLAIM",
    "COMMIT",
    "DEAD_LETTER",
    "PURGE",
    "RELEASE_LEASE",
    "REPLAY",
    "RETRY",
]

# KEYS: seq, sinks, version, seen[1..n], then per sink j (1..m): due, body, wake;
#       then the tenant's baselines hash; then q nonce keys (callback replay guard).
# ARGV: now_ms, window_ms, new_ver ("" = keep), n, m, sink names[1..m],
#       then per event: json, k, k sink indexes (1-based);
#       then b, and b pairs (mailbox, unread count) for the baselines hash;
#       then the nonces' ttl_ms.
# Returns {emitted, duplicates, {indexes (1-based) of nonces remembered already}}; when
# that list is not empty, nothing was written.
COMMIT = """#!lua
local now, window, ver = ARGV[1], ARGV[2], ARGV[3]
local n, m = tonumber(ARGV[4]), tonumber(ARGV[5])
local bkey = 3 + n + 3 * m + 1
local replayed = {}
for i = bkey + 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then replayed[#replayed + 1] = i - bkey end
end
if #replayed > 0 then return {0, 0, replayed} end
local fresh, batch, dup, total = {}, {}, 0, 0
local at = 6 + m
for e = 1, n do
  local seen = KEYS[3 + e]
  local k = tonumber(ARGV[at + 1])
  if batch[seen] or redis.call('EXISTS', seen) == 1 then
    dup = dup + 1
  else
    batch[seen] = true
    fresh[#fresh + 1] = {e, at}
    total = total + k
  end
  at = at + 2 + k
end
local seq = 0
if total > 0 then seq = redis.call('INCRBY', KEYS[1], total) - total end
local woken = {}
for _, f in ipairs(fresh) do
  local e, a = f[1], f[2]
  redis.call('SET', KEYS[3 + e], '1', 'PX', window)
  for j = 1, tonumber(ARGV[a + 1]) do
    local s = tonumber(ARGV[a + 1 + j])
    local base = 3 + n + 3 * (s - 1)
    seq = seq + 1
    local id = string.format('%016d', seq) .. '-' .. now
    redis.call('ZADD', KEYS[base + 1], now, id)
    redis.call('HSET', KEYS[base + 2], id, ARGV[a])
    woken[s] = true
  end
end
for s in pairs(woken) do
  local wake = KEYS[3 + n + 3 * s]
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, 0)
  redis.call('SADD', KEYS[2], ARGV[5 + s])
end
if ver ~= '' then redis.call('SET', KEYS[3], ver) end
local b = tonumber(ARGV[at] or '0')
for i = 1, b do
  redis.call('HSET', KEYS[bkey], ARGV[at + 2 * i - 1], ARGV[at + 2 * i])
end
local ttl = ARGV[at + 2 * b + 1]
for i = bkey + 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ttl)
end
return {#fresh, dup, {}}
"""

# Forget delivered ids ARGV[FIRST..]: KEYS due, body, attempts (no mailbox line to move).
_FORGET = """for i = FIRST, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
"""

# KEYS: due, body, attempts, wake.  ARGV: now_ms, until_ms, limit, then the ids to ack
# first (claimed with CLAIM and delivered: no mailbox line to move).
# Returns {id, body, attempts, id, body, attempts, ...}; claimed ids score `until_ms`.
CLAIM = (
    "#!lua\n"
    + _FORGET.replace("FIRST", "4")
    + """local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = body
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
if #ids == tonumber(ARGV[3]) and redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1]) > 0 then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 0)
end
return out
"""
)

# An id in a mailbox's line (ordered sinks) leaves it, and the next id becomes due now.
# KEYS: due, line, wake.  ARGV: id, now_ms.
_MOVE_LINE = """
local rank = redis.call('ZRANK', KEYS[LINE], ARGV[1])
if rank then
  redis.call('ZREM', KEYS[LINE], ARGV[1])
  local nxt = redis.call('ZRANGE', KEYS[LINE], rank, rank)[1]
  local score = nxt and redis.call('ZSCORE', KEYS[1], nxt)
  if score and tonumber(score) > tonumber(ARGV[NOW]) then
    redis.call('ZADD', KEYS[1], ARGV[NOW], nxt)
    redis.call('LPUSH', KEYS[LINE + 1], '1')
    redis.call('LTRIM', KEYS[LINE + 1], 0, 0)
  end
end
"""

# KEYS: due, body, attempts, line (the mailbox's), wake.  ARGV: id, now_ms.
ACK = (
    """#!lua
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
"""
    + _MOVE_LINE.replace("LINE", "4").replace("NOW", "2")
    + "return 1\n"
)

# KEYS: due, body, attempts.  ARGV: ids (claimed with CLAIM: no mailbox line to move).
ACK_MANY = "#!lua\n" + _FORGET.replace("FIRST", "1") + "return #ARGV\n"

# Only the current claimer (whose lease deadline is still the score) may reschedule.
# KEYS: due, attempts, wake.  ARGV: id, claim token (until_ms), at_ms.
RETRY = """#!lua
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 0)
return 1
"""

# KEYS: due, body, attempts, dead, dead_order, line (the mailbox's), wake.
# ARGV: id, claim token, record, failed_ms.
DEAD_LETTER = (
    """#!lua
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
"""
    + _MOVE_LINE.replace("LINE", "6").replace("NOW", "4")
    + "return 1\n"
)

# KEYS: due, body, attempts, dead, dead_order, wake.  ARGV: now_ms, then (id, json) pairs.
REPLAY = """#!lua
local moved = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HDEL', KEYS[4], id) == 1 then
    redis.call('ZREM', KEYS[5], id)
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 0)
end
return moved
"""

# KEYS: dead, dead_order.  ARGV: ids.
PURGE = """#!lua
local gone = 0
for _, id in ipairs(ARGV) do
  gone = gone + redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return gone
"""

# KEYS: lease keys.  ARGV: owner, ttl_ms.  Returns 1/0 per key.
ACQUIRE_LEASES = """#!lua
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not cur then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: the leases to give up; ARGV: owner. Returns how many it held and released.
RELEASE_LEASE = """#!lua
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then released = released + redis.call('DEL', key) end
end
return released
"""
