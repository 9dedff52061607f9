"""Small helpers shared by the Exmail tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing

from bridge.config import TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.pushes import Push
from bridge.metrics import REGISTRY

ACME = "admin@acme.com"


async def collect(client: ExmailClient, tenant: TenantConfig, ver: str = "0") -> list[Push]:
    """Every push of one listen request."""
    async with aclosing(client.listen(tenant, ver)) as pushes:
        return [push async for push in pushes]


async def call(client: ExmailClient, tenant: TenantConfig, endpoint: str) -> object:
    """One listen (all its pushes) or one newcount of bob, by endpoint name."""
    if endpoint == "listen":
        return await collect(client, tenant)
    return await client.newcount(tenant, "bob@acme.com")


async def until(predicate: Callable[[], bool], *, tries: int = 1000) -> None:
    """Yield to the loop until `predicate()` holds (fails the test after `tries`)."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def sample(name: str, **labels: str) -> float:
    """The current value of a metric sample (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
