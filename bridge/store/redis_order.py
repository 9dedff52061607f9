"""The Redis store's operations for ordered sinks and shared send budgets, as a mixin of
`RedisStore`.

A mailbox's line is a ZSET of delivery ids with score 0 (`Keys.line`), so it sorts by id,
which is commit order. An id joins its line when an ordered claim first reads it and leaves
on ack or dead letter (ACK and DEAD_LETTER then make the next id in the line due now). A
delivery may be claimed only when no id before it in its line is left: that is the block,
kept in Redis, so it holds across replicas and past a claim lease. A held delivery is
deferred, with no attempt counted, to the due time of the one before it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any

import redis.asyncio as aioredis

from bridge.events import Event
from bridge.store.base import HOLD_S, Delivery, scan_size
from bridge.store.budget import Grant, Limits
from bridge.store.keys import Keys
from bridge.store.redis_codec import delivery_from, ms, split_ref

__all__ = ["ADVANCE_MARK", "CLAIM_IN_ORDER", "DEFER", "RENEW", "TAKE_BUDGET", "OrderedOps"]

# KEYS: due, body, attempts, then one line per mailbox.
# ARGV: now_ms, until_ms, limit, hold_ms, then (id, line index) pairs in id order.
# Returns {id, body, attempts, ...} like CLAIM.
CLAIM_IN_ORDER = """#!lua
local now, limit, hold = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local function live(id) return redis.call('HEXISTS', KEYS[2], id) == 1 end
local function before(line, id)
  while true do
    local rank = redis.call('ZRANK', line, id)
    if rank == 0 then return nil end
    local prev = redis.call('ZRANGE', line, rank - 1, rank - 1)[1]
    if live(prev) then return prev end
    redis.call('ZREM', line, prev)
  end
end
for i = 5, #ARGV, 2 do
  if #out >= 3 * limit then break end
  local id, line = ARGV[i], KEYS[3 + tonumber(ARGV[i + 1])]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now and live(id) then
    redis.call('ZADD', line, 'NX', 0, id)
    local prev = before(line, id)
    if prev == nil then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[2], id)
      out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
    else
      local due = tonumber(redis.call('ZSCORE', KEYS[1], prev) or now)
      if due <= now then due = now + hold end
      redis.call('ZADD', KEYS[1], due, id)
    end
  end
end
return out
"""

# Only the current claimer may move a delivery; no attempt is counted.
# KEYS: due, wake.  ARGV: id, claim token (until_ms), at_ms.
DEFER = """#!lua
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, 0)
return 1
"""

# KEYS: due.  ARGV: id, claim token (until_ms), new until_ms (the new token).
RENEW = """#!lua
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


# All-or-one take of a send budget (bridge.store.budget).
# KEYS: budget.  ARGV: now_ms, want, unique send id prefix, then (limit, window_ms) pairs.
# Returns {taken, wait_ms}.
TAKE_BUDGET = """#!lua
local now, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local longest = 0
for i = 4, #ARGV, 2 do longest = math.max(longest, tonumber(ARGV[i + 1])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local free, wait = want, 0
for i = 4, #ARGV, 2 do
  local limit, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local since = '(' .. (now - window)
  local used = redis.call('ZCOUNT', KEYS[1], since, '+inf')
  free = math.min(free, limit - used)
  if used >= limit then
    local old = redis.call('ZRANGE', KEYS[1], since, '+inf', 'BYSCORE', 'LIMIT', used - limit, 1,
      'WITHSCORES')
    wait = math.max(wait, tonumber(old[2]) + window - now)
  end
end
local take = 0
if free >= want then take = want elseif free >= 1 then take = 1 end
for j = 1, take do redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. j) end
if take > 0 then redis.call('PEXPIRE', KEYS[1], longest) end
if take > 0 then wait = 0 end
return {take, wait}
"""


# KEYS: mark.  ARGV: value, ttl_ms.  Returns 1 when value is the mark now.
ADVANCE_MARK = """#!lua
local cur = redis.call('GET', KEYS[1])
if cur and cur > ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class OrderedOps:
    """`claim_in_order`, `defer` and `renew` for `RedisStore`."""

    _keys: Keys
    _redis: aioredis.Redis

    def _run(self, op: str, call: Awaitable[Any]) -> Awaitable[Any]:
        raise NotImplementedError  # RedisStore's

    def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        raise NotImplementedError

    async def claim_in_order(self, sink: str, *, limit: int, lease_s: float) -> list[Delivery]:
        """Up to `limit` due deliveries, each first in its mailbox's line."""
        k = self._keys
        now_ms = ms(time.time())
        until_ms = now_ms + max(ms(lease_s), 1)
        due = k.due(sink)
        read = self._redis.zrange(due, "-inf", now_ms, byscore=True, offset=0, num=scan_size(limit))
        ids = await self._run("claim_in_order", read)
        if not ids:
            return []
        bodies = await self._run("claim_in_order", self._redis.hmget(k.body(sink), ids))
        lines: dict[str, int] = {}
        pairs: list[Any] = []
        for ident, body in sorted(zip(ids, bodies, strict=True)):  # ids sort in commit order
            if body is not None:
                mailbox = Event.from_json(body).mailbox
                pairs += [ident, lines.setdefault(mailbox, len(lines) + 1)]
        keys = [due, k.body(sink), k.attempts(sink), *(k.line(sink, m) for m in lines)]
        args = [now_ms, until_ms, limit, ms(HOLD_S), *pairs]
        flat = await self._script("CLAIM_IN_ORDER", keys, args)
        return [
            delivery_from(sink, flat[i], flat[i + 1], flat[i + 2], until_ms)
            for i in range(0, len(flat), 3)
        ]

    async def take_budget(self, key: str, want: int, limits: Limits, now: float) -> Grant:
        """Take slots of `key`'s send budget, all-or-one, in one script."""
        args: list[Any] = [ms(now), want, uuid.uuid4().hex]
        for limit, window_s in limits:
            args += [limit, ms(window_s)]
        taken, wait_ms = await self._script("TAKE_BUDGET", [self._keys.budget(key)], args)
        return Grant(taken=int(taken), wait_s=int(wait_ms) / 1000)

    async def advance_mark(self, key: str, value: str, ttl_s: float) -> bool:
        """Set `key`'s mark to `value` unless it is greater already (one script)."""
        args = [value, max(ms(ttl_s), 1)]
        return bool(int(await self._script("ADVANCE_MARK", [self._keys.mark(key)], args)))

    async def defer(self, delivery: Delivery, at: float) -> None:
        """Try the delivery again at unix time `at`, attempts unchanged."""
        k, sink = self._keys, delivery.sink
        ident, token = split_ref(delivery.ref)
        await self._script("DEFER", [k.due(sink), k.wake(sink)], [ident, token, ms(at)])

    async def renew(self, delivery: Delivery, lease_s: float) -> Delivery | None:
        """Extend the claim; the returned delivery carries the new claim token."""
        ident, token = split_ref(delivery.ref)
        until_ms = ms(time.time()) + max(ms(lease_s), 1)
        kept = await self._script(
            "RENEW", [self._keys.due(delivery.sink)], [ident, token, until_ms]
        )
        if not int(kept):
            return None
        return Delivery(
            sink=delivery.sink,
            event=delivery.event,
            attempt=delivery.attempt,
            ref=f"{ident}@{until_ms}",
            enqueued_at=delivery.enqueued_at,
        )
