"""The aiohttp session for Exmail: a pool sized for one held long poll per tenant."""

from __future__ import annotations

import aiohttp

from bridge.config import ExmailSection

__all__ = ["listen_read_timeout_s", "make_session"]

POOL_HEADROOM = 50  # token, user/list, newcount and authkey calls beside the held polls


def listen_read_timeout_s(settings: ExmailSection) -> float:
    """How long a listen socket may stay silent: the hold plus the call timeout."""
    return settings.listen_hold_s + settings.timeout_s


def make_session(settings: ExmailSection, *, max_connections: int) -> aiohttp.ClientSession:
    """A session whose pool holds `max_connections` (tenants) + headroom; call inside a loop.

    `total` is unset because a held poll legitimately lasts the hold time; `connect` also
    bounds the wait for a free pooled connection, so pool starvation is an error, not a stall.
    """
    limit = max(1, max_connections) + POOL_HEADROOM
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_s,
        sock_connect=settings.connect_timeout_s,
        sock_read=listen_read_timeout_s(settings),
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)
