"""The Redis store's subscriptions and attempts (`SubscriptionStore`, with `RedisTokens`).

`RedisSubscriptions` is a mixin of `RedisStore`. Its keys and the tokens' (`tokens_redis`)
are `SubKeys` (below, beside
the outbox keys of `bridge.store.keys`, under the same prefix); its multi-key steps are
the Lua scripts below, each atomic.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bridge.delivery.subscription_model import Attempt, Subscription, id_time
from bridge.events import Event
from bridge.store.keys import Keys
from bridge.store.redis_codec import ms
from bridge.store.subscriptions import AttemptQuery

__all__ = ["RedisSubscriptions", "SubKeys"]

_PAGE = 200


@dataclass(frozen=True, slots=True)
class SubKeys:
    """Key names of the subscription data under one prefix."""

    prefix: str

    def subs(self) -> str:
        """HASH subscription id -> record JSON (secrets included). No TTL."""
        return f"{self.prefix}subs"

    def changed(self) -> str:
        """STRING counter (INCR on every put or delete of a subscription). No TTL."""
        return f"{self.prefix}subs:changed"

    def health(self) -> str:
        """HASH subscription id -> unix ms since it has failed every attempt. No TTL
        (a field goes on the next success, or with the subscription)."""
        return f"{self.prefix}subs:health"

    def tokens(self) -> str:
        """HASH SHA-256 of a scoped API token -> token record JSON (its id inside). No
        TTL: a field goes when the token is revoked."""
        return f"{self.prefix}tokens"

    def attempts(self, sub_id: str) -> str:
        """ZSET attempt record JSON (starting with its time-sortable id) -> unix ms.
        Trimmed on every write to the retention and `attempts_max`; TTL = retention."""
        return f"{self.prefix}subs:attempts:{sub_id}"

    def event(self, event_id: str) -> str:
        """STRING CloudEvent JSON of an event sent to a subscription. TTL = retention."""
        return f"{self.prefix}subs:event:{event_id}"


# KEYS: attempts, event, health.  ARGV: record, at_ms, body, keep_ms, keep_max, sub id,
# ok ("1"/"0"), cutoff_ms.  Returns since-when-failing (ms) or nil after a success.
RECORD_ATTEMPT = """#!lua
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[8])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[5]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
if ARGV[7] == '1' then
  redis.call('HDEL', KEYS[3], ARGV[6])
  return false
end
local since = redis.call('HGET', KEYS[3], ARGV[6])
if not since then
  redis.call('HSET', KEYS[3], ARGV[6], ARGV[2])
  since = ARGV[2]
end
return since
"""

# KEYS: subs, changed, health, attempts, then the outbox keys due, body, attempts-count,
# dead, dead_order.  ARGV: id.  Returns 1 when the subscription existed.
DELETE_SUBSCRIPTION = """#!lua
local had = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
return had
"""

# KEYS: subs, changed.  ARGV: id, record.
PUT_SUBSCRIPTION = """#!lua
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('INCR', KEYS[2])
"""

# KEYS: seq, sinks, due, body, wake.  ARGV: now_ms, sink, bodies...
ENQUEUE = """#!lua
local n = #ARGV - 2
if n <= 0 then return 0 end
local seq = redis.call('INCRBY', KEYS[1], n) - n
for i = 3, #ARGV do
  seq = seq + 1
  local id = string.format('%016d', seq) .. '-' .. ARGV[1]
  redis.call('ZADD', KEYS[3], ARGV[1], id)
  redis.call('HSET', KEYS[4], id, ARGV[i])
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 0)
return n
"""

# KEYS: due, body, attempts-count, dead, dead_order.  Returns how many entries went.
DROP = """#!lua
local gone = redis.call('ZCARD', KEYS[1]) + redis.call('HLEN', KEYS[4])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return gone
"""

SCRIPTS = {
    "RECORD_ATTEMPT": RECORD_ATTEMPT,
    "DELETE_SUBSCRIPTION": DELETE_SUBSCRIPTION,
    "PUT_SUBSCRIPTION": PUT_SUBSCRIPTION,
    "ENQUEUE": ENQUEUE,
    "DROP": DROP,
}


class RedisSubscriptions:
    """The `SubscriptionStore` half of `RedisStore`."""

    _keys: Keys
    _redis: Redis
    _scripts: dict[str, Any]

    async def _run(self, op: str, call: Awaitable[Any]) -> Any:
        raise NotImplementedError  # provided by RedisStore

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        raise NotImplementedError  # provided by RedisStore

    @property
    def _sub_keys(self) -> SubKeys:
        return SubKeys(self._keys.prefix)

    def _outbox_keys(self, sink: str) -> list[str]:
        k = self._keys
        return [k.due(sink), k.body(sink), k.attempts(sink), k.dead(sink), k.dead_order(sink)]

    async def put_subscription(self, sub: Subscription) -> None:
        """Create or replace `sub`."""
        k = self._sub_keys
        await self._script("PUT_SUBSCRIPTION", [k.subs(), k.changed()], [sub.id, sub.to_record()])

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        """The subscription, or None."""
        raw = await self._run("get_subscription", self._redis.hget(self._sub_keys.subs(), sub_id))
        return None if raw is None else Subscription.from_record(raw)

    async def list_subscriptions(self) -> list[Subscription]:
        """Every subscription, by id."""
        raw = await self._run("list_subscriptions", self._redis.hvals(self._sub_keys.subs()))
        return sorted((Subscription.from_record(r) for r in raw), key=lambda s: s.id)

    async def delete_subscription(self, sub_id: str) -> bool:
        """Forget the subscription, its attempts, pending deliveries and dead letters."""
        k = self._sub_keys
        keys = [k.subs(), k.changed(), k.health(), k.attempts(sub_id), *self._outbox_keys(sub_id)]
        return bool(await self._script("DELETE_SUBSCRIPTION", keys, [sub_id]))

    async def subscriptions_changed(self) -> int:
        """The change counter."""
        raw = await self._run("subscriptions_changed", self._redis.get(self._sub_keys.changed()))
        return int(raw or 0)

    async def drop_deliveries(self, sink: str) -> int:
        """Delete the sink's pending deliveries and dead letters."""
        return int(await self._script("DROP", self._outbox_keys(sink), []))

    async def enqueue(self, sink: str, events: Sequence[Event]) -> int:
        """Append events to the sink's outbox, due now."""
        k = self._keys
        keys = [k.seq(), k.sinks(), k.due(sink), k.body(sink), k.wake(sink)]
        args = [ms(time.time()), sink, *(e.to_json() for e in events)]
        return int(await self._script("ENQUEUE", keys, args))

    async def record_attempts(
        self, items: Sequence[tuple[Attempt, Event]], *, keep_s: float, keep_max: int
    ) -> dict[str, float | None]:
        """Keep the attempts and event bodies (one pipelined round trip, a script per
        attempt); failing-since per subscription."""
        if not items:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        script = self._scripts["RECORD_ATTEMPT"]
        for attempt, event in items:
            keys, args = self._attempt_call(attempt, event, keep_s, keep_max)
            await script(keys=keys, args=args, client=pipe)
        replies = await self._run("record_attempts", pipe.execute())
        return {
            attempt.subscription_id: None if since is None else int(since) / 1000
            for (attempt, _), since in zip(items, replies, strict=True)
        }

    def _attempt_call(
        self, attempt: Attempt, event: Event, keep_s: float, keep_max: int
    ) -> tuple[list[str], list[Any]]:
        k = self._sub_keys
        keys = [k.attempts(attempt.subscription_id), k.event(attempt.event_id), k.health()]
        at_ms = ms(attempt.at)
        args = [
            attempt.to_record(),
            at_ms,
            event.to_json(),
            max(ms(keep_s), 1),
            keep_max,
            attempt.subscription_id,
            "1" if attempt.status == "succeeded" else "0",
            at_ms - ms(keep_s),
        ]
        return keys, args

    async def record_attempt(
        self, attempt: Attempt, event: Event, *, keep_s: float, keep_max: int
    ) -> float | None:
        """One attempt; its subscription's failing-since."""
        found = await self.record_attempts([(attempt, event)], keep_s=keep_s, keep_max=keep_max)
        return found[attempt.subscription_id]

    async def attempts(self, query: AttemptQuery) -> list[Attempt]:
        """Attempts matching `query`, newest first (filtered page by page)."""
        key = self._sub_keys.attempts(query.subscription_id)
        top = query.until if query.until is not None else float("inf")
        if query.before_id is not None:
            top = min(top, id_time(query.before_id))
        high = "+inf" if top == float("inf") else ms(top)
        low = "-inf" if query.since is None else ms(query.since)
        found: list[Attempt] = []
        offset = 0
        while len(found) < query.limit:
            call = self._redis.zrevrangebyscore(key, high, low, start=offset, num=_PAGE)
            page = await self._run("attempts", call)
            found += [a for a in map(Attempt.from_record, page) if query.wants(a)]
            if len(page) < _PAGE:
                break
            offset += _PAGE
        return found[: query.limit]

    async def event_body(self, event_id: str) -> Event | None:
        """A sent event's body, or None."""
        raw = await self._run("event_body", self._redis.get(self._sub_keys.event(event_id)))
        return None if raw is None else Event.from_json(raw)
