"""Every Redis key the Redis store uses: the schema of its data, in one place.

All keys start with `[bridge] redis_prefix` (default ``exmail-bridge:``). Lua scripts
receive their keys from here as KEYS; they never build a key name themselves.

A delivery id is ``<16-digit commit sequence>-<enqueued unix ms>``: ids sort by commit
order, so ZSET ties (same score) come out oldest first, and the id carries its own
enqueue time.

Redis Cluster is not supported (scripts touch keys of several sinks and tenants).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    def version(self, tenant: str) -> str:
        """STRING: the tenant's newest committed listen version. No TTL."""
        return f"{self.prefix}ver:{tenant}"

    def seen(self, event_id: str) -> str:
        """STRING "1": the event was committed. TTL = dedupe window (SET PX)."""
        return f"{self.prefix}seen:{event_id}"

    def seq(self) -> str:
        """STRING counter (INCRBY): the commit sequence behind delivery ids. No TTL."""
        return f"{self.prefix}seq"

    def sinks(self) -> str:
        """SET of sink names that ever received a delivery (for sink=None queries). No TTL."""
        return f"{self.prefix}sinks"

    def due(self, sink: str) -> str:
        """ZSET delivery id -> unix ms when it may next be claimed: its due time, or while
        claimed the end of its claim lease (so an expired lease needs no sweeper). No TTL."""
        return f"{self.prefix}due:{sink}"

    def body(self, sink: str) -> str:
        """HASH delivery id -> CloudEvent JSON, for every id in `due`. No TTL."""
        return f"{self.prefix}body:{sink}"

    def attempts(self, sink: str) -> str:
        """HASH delivery id -> attempts made so far (absent = 0). No TTL."""
        return f"{self.prefix}attempts:{sink}"

    def line(self, sink: str, mailbox: str) -> str:
        """ZSET delivery id -> 0 (so it sorts by id, which is commit order): the deliveries
        of `mailbox` waiting for the ordered `sink`. An id joins when an ordered claim first
        reads it and leaves on ack or dead letter; Redis drops the key when it empties."""
        return f"{self.prefix}line:{sink}:{mailbox}"

    def budget(self, key: str) -> str:
        """ZSET send id -> unix ms of the send, for one budget key (a WeCom member of one
        app). TTL = the longest window (PEXPIRE on every take)."""
        return f"{self.prefix}budget:{key}"

    def mark(self, key: str) -> str:
        """STRING: the newest value published for `key` (an unread count's event time).
        TTL = the caller's ttl_s, set on every advance."""
        return f"{self.prefix}mark:{key}"

    def dead(self, sink: str) -> str:
        """HASH delivery id -> dead letter JSON (event, attempts, reason, failed_at). No TTL."""
        return f"{self.prefix}dead:{sink}"

    def dead_order(self, sink: str) -> str:
        """ZSET delivery id -> unix ms it failed: the dead letters, oldest first. No TTL."""
        return f"{self.prefix}deadq:{sink}"

    def wake(self, sink: str) -> str:
        """LIST of at most one b"1": pushed when something became due for `sink`;
        waiters BLPOP it. No TTL (one tiny element)."""
        return f"{self.prefix}wake:{sink}"

    def lease(self, tenant: str) -> str:
        """STRING owner (replica id) listening for the tenant. TTL = lease TTL (PX)."""
        return f"{self.prefix}lease:{tenant}"

    def replicas(self) -> str:
        """ZSET replica id -> unix ms its heartbeat expires; expired members are pruned on
        every heartbeat. No TTL."""
        return f"{self.prefix}replicas"

    def members_channel(self) -> str:
        """PUB/SUB channel: a replica joined, left or gave leases up (a hint to rebalance
        now). Nothing is stored."""
        return f"{self.prefix}members"

    def baselines(self, tenant: str) -> str:
        """HASH mailbox -> last committed unread count (set by commit). No TTL."""
        return f"{self.prefix}baselines:{tenant}"

    def directory(self, tenant: str) -> str:
        """STRING JSON {version, members}: the tenant's last directory walk. No TTL."""
        return f"{self.prefix}directory:{tenant}"

    def nonce(self, key: str) -> str:
        """STRING "1": a callback's (signature, nonce) key, remembered to refuse replays.
        TTL = the replay window (SET PX by the COMMIT script, with the callback's events)."""
        return f"{self.prefix}nonce:{key}"

    def secret(self, name: str) -> str:
        """STRING bytes: a generated secret shared by all replicas (SET NX). No TTL."""
        return f"{self.prefix}secret:{name}"

    def upstream_token(self, key: str) -> str:
        """STRING: a sealed upstream access token (bridge.tokenvault), by credential key.
        TTL = the token's remaining lifetime (SET PX)."""
        return f"{self.prefix}uptoken:{key}"

    # the "my notifications" page (bridge.store.redis_me) -------------------------------
    def preferences(self, member: str) -> str:
        """STRING JSON: a member's preferences (member = "<corp_id>/<userid>"). No TTL."""
        return f"{self.prefix}prefs:{member}"

    def notices(self, member: str) -> str:
        """ZSET event id -> unix ms the mail arrived: the member's newest notices,
        trimmed to NOTICES_KEPT on every write. No TTL."""
        return f"{self.prefix}notices:{member}"

    def notice_bodies(self, member: str) -> str:
        """HASH event id -> notice JSON, for every id in `notices`. No TTL."""
        return f"{self.prefix}notice:{member}"

    def holds(self, sink: str, member: str) -> str:
        """HASH event id -> {"event", "held_at"} JSON: mails held back for a member until
        their digest is committed. No TTL (removed by the release)."""
        return f"{self.prefix}held:{sink}:{member}"

    def held_members(self, sink: str) -> str:
        """SET of members with a non-empty `holds` hash for `sink`. No TTL."""
        return f"{self.prefix}heldm:{sink}"

    def once(self, name: str) -> str:
        """STRING: a single-use value (a sign-in state). TTL = its lifetime (SET PX);
        taken with GETDEL."""
        return f"{self.prefix}once:{name}"
