"""The Redis store's part for the "my notifications" page (`PreferenceStore`).

Keys are in `bridge.store.keys`. Writes that touch two keys (a notice and its trim, a
hold and the set of members with holds) are small Lua scripts, so another replica never
sees one half.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from bridge.delivery.preferences import Held, Notice, Preferences
from bridge.events import Event
from bridge.store.keys import Keys
from bridge.store.preferences_base import NOTICES_KEPT
from bridge.store.redis_codec import ms

__all__ = ["RedisPreferencesMixin"]

# KEYS: notices zset, notice bodies hash. ARGV: event id, unix ms, body, how many to keep.
RECORD_NOTICE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
    local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
    redis.call('HDEL', KEYS[2], unpack(old))
end
return 1
"""
# KEYS: holds hash, held-members set. ARGV: member, event id, record.
HOLD = """
redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
# KEYS: holds hash, held-members set. ARGV: member, event ids...
UNHOLD = """
local gone = 0
for i = 2, #ARGV do gone = gone + redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return gone
"""


class RedisPreferencesMixin:
    """`PreferenceStore` for `RedisStore`: uses its `_keys`, `_redis` and `_run`."""

    _keys: Keys
    _redis: aioredis.Redis

    async def _run(self, op: str, call: Awaitable[Any]) -> Any:
        raise NotImplementedError  # provided by RedisStore

    async def _lua(self, op: str, script: str, keys: list[str], args: list[Any]) -> Any:
        # EVAL each time: these run once per mail or page view, not on the hot commit path.
        return await self._run(op, self._redis.eval(script, len(keys), *keys, *args))

    async def get_preferences(self, member: str) -> Preferences | None:
        """The member's preferences, None when they never saved any."""
        raw = await self._run("get_preferences", self._redis.get(self._keys.preferences(member)))
        return None if raw is None else Preferences.from_json(raw)

    async def set_preferences(self, member: str, prefs: Preferences) -> None:
        """Replace the member's preferences."""
        key = self._keys.preferences(member)
        await self._run("set_preferences", self._redis.set(key, prefs.to_json()))

    async def record_notice(self, member: str, notice: Notice) -> None:
        """Upsert the notice by event id; keep the newest `NOTICES_KEPT`."""
        keys = [self._keys.notices(member), self._keys.notice_bodies(member)]
        args = [notice.event_id, ms(notice.at), notice.to_json(), NOTICES_KEPT]
        await self._lua("record_notice", RECORD_NOTICE, keys, args)

    async def notices(self, member: str, limit: int = 20) -> list[Notice]:
        """The member's newest notices, newest first."""
        ids = await self._run(
            "notices", self._redis.zrevrange(self._keys.notices(member), 0, limit - 1)
        )
        if not ids:
            return []
        bodies = await self._run(
            "notices", self._redis.hmget(self._keys.notice_bodies(member), ids)
        )
        return [Notice.from_json(body) for body in bodies if body is not None]

    async def hold(self, sink: str, member: str, event: Event, held_at: float) -> None:
        """Keep `event` back for `member`."""
        record = orjson.dumps({"event": orjson.Fragment(event.to_json()), "held_at": held_at})
        keys = [self._keys.holds(sink, member), self._keys.held_members(sink)]
        await self._lua("hold", HOLD, keys, [member, event.id, record])

    async def held(self, sink: str, member: str) -> list[Held]:
        """The member's held events, oldest first."""
        raw = await self._run("held", self._redis.hvals(self._keys.holds(sink, member)))
        records = [orjson.loads(item) for item in raw]
        held = [
            Held(event=Event.from_json(orjson.dumps(rec["event"])), held_at=float(rec["held_at"]))
            for rec in records
        ]
        return sorted(held, key=lambda h: (h.held_at, h.event.id))

    async def held_members(self, sink: str) -> list[str]:
        """Members with held events for `sink`."""
        raw = await self._run("held_members", self._redis.smembers(self._keys.held_members(sink)))
        return sorted(cast(bytes, m).decode() for m in raw)

    async def unhold(self, sink: str, member: str, event_ids: Sequence[str]) -> int:
        """Forget these held events."""
        keys = [self._keys.holds(sink, member), self._keys.held_members(sink)]
        return int(await self._lua("unhold", UNHOLD, keys, [member, *event_ids]))

    async def put_once(self, name: str, value: bytes, ttl_s: float) -> None:
        """Store a single-use value for `ttl_s` seconds."""
        key = self._keys.once(name)
        await self._run("put_once", self._redis.set(key, value, px=max(ms(ttl_s), 1)))

    async def take_once(self, name: str) -> bytes | None:
        """Take the value under `name` (None when absent or expired)."""
        raw = await self._run("take_once", self._redis.getdel(self._keys.once(name)))
        return cast(bytes | None, raw)
