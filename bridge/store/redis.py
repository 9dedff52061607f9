"""The Redis store: several replicas share versions, outboxes, dedupe and leases.

Design (decided here; key layout in `bridge.store.keys`, scripts in `redis_scripts`):

- Each sink's outbox is one ZSET of delivery ids scored by the unix ms when the delivery
  may next be claimed, plus a HASH of bodies and a HASH of attempt counts. Ready, scheduled
  and claimed deliveries live in the same ZSET: `claim` (one Lua script) takes the
  lowest-scored ids whose score has passed and re-scores them to the end of their lease.
  A replica that dies mid-delivery needs no recovery pass: the lease deadline passes and
  the delivery is due again. This replaces the streams + consumer groups sketch in
  DESIGN.md: a stream still needs a ZSET for the retry schedule and XAUTOCLAIM sweeps
  for crashed consumers, and its idle time only approximates a per-claim lease. Claimed
  ids are fenced by their lease deadline: a retry or dead-letter from a claimer whose
  lease already passed (and was re-claimed) is ignored; an ack always wins.
- `commit` is one Lua script: dedupe checks for every event first, then the writes
  (SET PX per event id, ZADD + HSET per delivery, the version) - all or nothing.
- `wait` blocks in BLPOP on a per-sink wake list (at most one element) on a separate
  client with no socket timeout and no retries; commit, retry, replay and a claim that
  leaves due work behind push to it, so a waiter wakes as soon as the commit lands, and
  a waiter that comes late finds the token still there.
- Commands use a BlockingConnectionPool (callers queue instead of failing when it is
  busy) and a short retry on connection errors, which can re-run a script whose reply
  was lost: a re-run commit counts its events as duplicates (they are stored), a re-run
  claim hides its deliveries until their lease passes (late, not lost).
- Responses stay bytes (decode_responses=False); text is decoded here, at the edge.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Self, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff

from bridge.errors import StoreFullError
from bridge.store import redis_order
from bridge.store import redis_scripts as lua
from bridge.store.base import CommitResult, DeadLetter, Delivery, Routed
from bridge.store.keys import Keys
from bridge.store.redis_codec import (
    BACKEND,
    dead_letter_from,
    delivery_from,
    ms,
    seam,
    split_ref,
)
from bridge.store.redis_me import RedisPreferencesMixin
from bridge.store.redis_members import Membership
from bridge.store.redis_sources import RedisSourcesMixin
from bridge.store.space import SpaceWatch
from bridge.store.subscriptions_redis import SCRIPTS as SUBSCRIPTION_SCRIPTS
from bridge.store.subscriptions_redis import RedisSubscriptions
from bridge.store.tokens_redis import RedisTokens
from bridge.store.upstream_tokens_redis import RedisUpstreamTokens

__all__ = ["RedisStore"]


class RedisStore(
    RedisPreferencesMixin,
    redis_order.OrderedOps,
    RedisSourcesMixin,
    RedisSubscriptions,
    RedisTokens,
    RedisUpstreamTokens,
    Membership,
):
    """`Store` on Redis 7+; open with `async with RedisStore(url=..., prefix=...)`."""

    backend = BACKEND

    def __init__(
        self,
        *,
        url: str,
        prefix: str,
        dedupe_window_s: float,
        pool_size: int = 64,
        op_timeout_s: float = 10.0,
    ) -> None:
        self._keys = Keys(prefix)
        self._window_ms = max(ms(dedupe_window_s), 1)
        self._op_timeout_s = op_timeout_s
        self._space = SpaceWatch()
        retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), 2)
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=op_timeout_s, retry=retry
        )
        # Blocking reads: no socket timeout (asyncio.timeout bounds them), no retries
        # (a re-sent BLPOP could swallow a wake token on a dead connection).
        self._blocking_pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=1024,
            timeout=None,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._blocking = aioredis.Redis(connection_pool=self._blocking_pool)
        self._scripts = {
            name: self._redis.register_script(getattr(module, name))
            for module in (lua, redis_order)
            for name in module.__all__
            if name.isupper()
        }
        for name, source in SUBSCRIPTION_SCRIPTS.items():
            self._scripts[name] = self._redis.register_script(source)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_feed()
        await self._redis.aclose()
        await self._blocking.aclose()
        await self._pool.aclose()
        await self._blocking_pool.aclose()

    async def _run(self, op: str, call: Awaitable[Any]) -> Any:
        try:
            async with seam(op, self._op_timeout_s):
                result = await call
        except StoreFullError as exc:
            self._space.refused(op, str(exc))
            raise
        self._space.succeeded(op)
        return result

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        return await self._run(name.lower(), script(keys=list(keys), args=list(args)))

    async def ping(self) -> None:
        """Raise StoreError unless Redis answers."""
        await self._run("ping", self._redis.ping())

    def full(self) -> str | None:
        """Why writes are refused for want of memory now, or None."""
        return self._space.problem()

    async def get_version(self, tenant: str) -> str:
        """The tenant's stored version, "0" when none."""
        raw = await self._run("get_version", self._redis.get(self._keys.version(tenant)))
        return raw.decode() if raw else "0"

    async def commit(
        self,
        tenant: str,
        routed: Sequence[Routed],
        new_ver: str | None = None,
        baselines: Mapping[str, int] | None = None,
        *,
        nonces: Sequence[str] = (),
        nonce_ttl_s: float = 0.0,
    ) -> CommitResult:
        """Append new events, set the version and the baselines, remember the nonces,
        atomically (one script call); nothing at all when a nonce is remembered already."""
        keys, args = self._commit_call(tenant, routed, new_ver)
        keys.append(self._keys.baselines(tenant))
        args.append(len(baselines or {}))
        for mailbox, unread in (baselines or {}).items():
            args += [mailbox, unread]
        keys += [self._keys.nonce(key) for key in nonces]
        args.append(max(ms(nonce_ttl_s), 1))
        emitted, duplicates, replayed = await self._script("COMMIT", keys, args)
        return CommitResult(
            emitted=int(emitted),
            duplicates=int(duplicates),
            replayed=frozenset(nonces[int(i) - 1] for i in replayed),
        )

    def _commit_call(
        self, tenant: str, routed: Sequence[Routed], new_ver: str | None
    ) -> tuple[list[str], list[Any]]:
        k = self._keys
        sinks = list(dict.fromkeys(s for item in routed for s in item.sinks))
        index = {sink: i + 1 for i, sink in enumerate(sinks)}
        keys = [k.seq(), k.sinks(), k.version(tenant)]
        keys += [k.seen(item.event.id) for item in routed]
        for sink in sinks:
            keys += [k.due(sink), k.body(sink), k.wake(sink)]
        args: list[Any] = [ms(time.time()), self._window_ms, new_ver or "", len(routed)]
        args += [len(sinks), *sinks]
        for item in routed:
            args += [item.event.to_json(), len(item.sinks), *(index[s] for s in item.sinks)]
        return keys, args

    async def claim(
        self, sink: str, *, limit: int, lease_s: float, acks: Sequence[Delivery] = ()
    ) -> list[Delivery]:
        """Forget `acks`, then up to `limit` due deliveries, oldest first, each leased for
        `lease_s`; one script call."""
        k = self._keys
        now_ms = ms(time.time())
        until_ms = now_ms + max(ms(lease_s), 1)
        keys = [k.due(sink), k.body(sink), k.attempts(sink), k.wake(sink)]
        done = [split_ref(d.ref)[0] for d in acks]
        flat = await self._script("CLAIM", keys, [now_ms, until_ms, limit, *done])
        return [
            delivery_from(sink, flat[i], flat[i + 1], flat[i + 2], until_ms)
            for i in range(0, len(flat), 3)
        ]

    async def wait(self, sink: str, timeout_s: float) -> None:
        """Return when something may be due for `sink`, or after `timeout_s`."""
        due = self._keys.due(sink)
        head = await self._run("wait", self._redis.zrange(due, 0, 0, withscores=True))
        block_s = timeout_s
        if head:
            block_s = min(timeout_s, head[0][1] / 1000 - time.time())
        if block_s < 0.001:  # BLPOP reads 0 as "forever"
            return
        async with seam("wait", block_s + self._op_timeout_s):
            await self._blocking.blpop([self._keys.wake(sink)], timeout=block_s)

    async def ack(self, delivery: Delivery) -> None:
        """Forget a delivered delivery."""
        k, sink = self._keys, delivery.sink
        ident, _ = split_ref(delivery.ref)
        keys = [k.due(sink), k.body(sink), k.attempts(sink)]
        keys += [k.line(sink, delivery.event.mailbox), k.wake(sink)]
        await self._script("ACK", keys, [ident, ms(time.time())])

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Forget several delivered deliveries in one script call per sink."""
        by_sink: dict[str, list[str]] = {}
        for delivery in deliveries:
            by_sink.setdefault(delivery.sink, []).append(split_ref(delivery.ref)[0])
        for sink, idents in by_sink.items():
            keys = [self._keys.due(sink), self._keys.body(sink), self._keys.attempts(sink)]
            await self._script("ACK_MANY", keys, idents)

    async def retry_at(self, delivery: Delivery, at: float, reason: str) -> None:
        """Reschedule the delivery at unix time `at` with one more attempt."""
        k, sink = self._keys, delivery.sink
        ident, token = split_ref(delivery.ref)
        keys = [k.due(sink), k.attempts(sink), k.wake(sink)]
        await self._script("RETRY", keys, [ident, token, ms(at)])

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the delivery to the sink's dead letters."""
        k, sink = self._keys, delivery.sink
        ident, token = split_ref(delivery.ref)
        now = time.time()
        record = orjson.dumps(
            {
                "event": delivery.event.to_cloudevent(),
                "attempts": delivery.attempt + 1,
                "reason": reason,
                "failed_at": now,
            }
        )
        keys = [k.due(sink), k.body(sink), k.attempts(sink), k.dead(sink), k.dead_order(sink)]
        keys += [k.line(sink, delivery.event.mailbox), k.wake(sink)]
        await self._script("DEAD_LETTER", keys, [ident, token, record, ms(now)])

    async def dead_letters(self, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first, of one sink or all."""
        found: list[DeadLetter] = []
        for name in await self._sink_names(sink):
            ids = await self._run(
                "dead_letters", self._redis.zrange(self._keys.dead_order(name), 0, limit - 1)
            )
            if ids:
                raw = await self._run("dead_letters", self._redis.hmget(self._keys.dead(name), ids))
                found += [dead_letter_from(name, rec) for rec in raw if rec]
        return sorted(found, key=lambda d: d.failed_at)[:limit]

    async def replay(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Move matching dead letters back into the outbox, due now."""
        moved = 0
        for name, matches in await self._dead_matching(sink, event_id):
            k = self._keys
            keys = [k.due(name), k.body(name), k.attempts(name), k.dead(name)]
            keys += [k.dead_order(name), k.wake(name)]
            args: list[Any] = [ms(time.time())]
            for ident, record in matches:
                args += [ident, orjson.dumps(record["event"])]
            moved += int(await self._script("REPLAY", keys, args))
        return moved

    async def purge(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Delete matching dead letters."""
        gone = 0
        for name, matches in await self._dead_matching(sink, event_id):
            keys = [self._keys.dead(name), self._keys.dead_order(name)]
            gone += int(await self._script("PURGE", keys, [i for i, _ in matches]))
        return gone

    async def _sink_names(self, sink: str | None) -> list[str]:
        if sink is not None:
            return [sink]
        names = await self._run("sinks", self._redis.smembers(self._keys.sinks()))
        return sorted(n.decode() for n in names)

    async def _dead_matching(
        self, sink: str | None, event_id: str | None
    ) -> list[tuple[str, list[tuple[bytes, dict[str, Any]]]]]:
        out = []
        for name in await self._sink_names(sink):
            raw = await self._run("dead_scan", self._redis.hgetall(self._keys.dead(name)))
            records = [(ident, orjson.loads(rec)) for ident, rec in raw.items()]
            matches = [
                (ident, rec)
                for ident, rec in records
                if event_id is None or rec["event"]["id"] == event_id
            ]
            if matches:
                out.append((name, matches))
        return out

    async def backlog(self, sink: str) -> int:
        """Deliveries waiting for `sink` (O(1))."""
        return int(await self._run("backlog", self._redis.zcard(self._keys.due(sink))))

    async def dead_count(self, sink: str) -> int:
        """Dead letters of `sink` (O(1))."""
        return int(await self._run("dead_count", self._redis.zcard(self._keys.dead_order(sink))))

    async def get_secret(self, name: str, factory: bytes) -> bytes:
        """The secret under `name`, stored from `factory` by whichever replica came first."""
        key = self._keys.secret(name)
        old = await self._run("get_secret", self._redis.set(key, factory, nx=True, get=True))
        return cast(bytes, old) if old is not None else factory

    async def acquire_leases(self, tenants: Sequence[str], owner: str, ttl_s: float) -> list[str]:
        """Take or renew each tenant's lease for `owner`; return the ones it now holds."""
        if not tenants:
            return []
        keys = [self._keys.lease(t) for t in tenants]
        got = await self._script("ACQUIRE_LEASES", keys, [owner, max(ms(ttl_s), 1)])
        return [t for t, ok in zip(tenants, got, strict=True) if int(ok)]

    async def acquire_lease(self, tenant: str, owner: str, ttl_s: float) -> bool:
        """Take or renew one tenant's lease; True when `owner` holds it."""
        return bool(await self.acquire_leases([tenant], owner, ttl_s))

    async def release_lease(self, tenant: str, owner: str) -> None:
        """Give the lease up, if `owner` holds it."""
        await self.release_leases([tenant], owner)

    async def release_leases(self, tenants: Sequence[str], owner: str) -> int:
        """Give up every lease `owner` holds among `tenants`, in one round trip."""
        if not tenants:
            return 0
        keys = [self._keys.lease(t) for t in tenants]
        return int(await self._script("RELEASE_LEASE", keys, [owner]))

    async def lease_owner(self, tenant: str) -> str | None:
        """Who holds the tenant's lease now, or None."""
        raw = await self._run("lease_owner", self._redis.get(self._keys.lease(tenant)))
        return raw.decode() if raw else None

    async def heartbeat(self, owner: str, ttl_s: float) -> None:
        """Announce `owner` alive for `ttl_s` seconds; prune replicas that went quiet."""
        now_ms = ms(time.time())
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self._keys.replicas(), {owner: now_ms + ms(ttl_s)})
        pipe.zremrangebyscore(self._keys.replicas(), "-inf", now_ms)
        await self._run("heartbeat", pipe.execute())

    async def live_owners(self) -> list[str]:
        """Replicas whose heartbeat has not expired, sorted."""
        key, now_ms = self._keys.replicas(), ms(time.time())
        raw = await self._run("live_owners", self._redis.zrangebyscore(key, now_ms, "+inf"))
        return sorted(r.decode() for r in raw)
