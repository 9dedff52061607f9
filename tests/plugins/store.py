"""Store fixtures: `store_maker` opens either backend at one fixed location per test."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import redis

from bridge.store import sqlite_ops
from bridge.store.base import Store
from bridge.store.redis import RedisStore
from bridge.store.sqlite import SqliteStore
from tests.plugins.services import RedisServer

__all__ = ["StoreMaker"]


@dataclass
class StoreMaker:
    """Opens a store of `backend` on the same file (sqlite) or prefix (redis) every time."""

    backend: str
    path: Path
    redis_server: RedisServer | None = None
    prefix: str = ""

    def open(self, *, dedupe_window_s: float = 3600.0) -> Store:
        """A new, not yet entered store over this test's data."""
        if self.redis_server is None:
            return SqliteStore(path=self.path, dedupe_window_s=dedupe_window_s)
        return RedisStore(
            url=self.redis_server.url, prefix=self.prefix, dedupe_window_s=dedupe_window_s
        )

    def restart(self) -> None:
        """Make the data go through the backend's persistence (redis: restart the server)."""
        if self.redis_server is not None:
            self.redis_server.restart()

    def failing_commit(self) -> AbstractContextManager[None]:
        """While entered, a commit fails part-way through its writes."""
        if self.redis_server is None:
            return _sqlite_fault_after_first_event()
        return _redis_out_of_memory(self.redis_server)


@contextmanager
def _sqlite_fault_after_first_event() -> Iterator[None]:
    # Fail right after the events' dedupe and outbox rows were written inside the
    # transaction (the version and baselines still to come): exercises the rollback.
    real = sqlite_ops._append

    def flaky(*args: Any) -> None:
        real(*args)
        raise sqlite3.OperationalError("disk I/O error")

    with patch.object(sqlite_ops, "_append", flaky):
        yield


@contextmanager
def _redis_out_of_memory(server: RedisServer) -> Iterator[None]:
    with redis.Redis.from_url(server.url) as client:
        client.config_set("maxmemory", "1")
        try:
            yield
        finally:
            client.config_set("maxmemory", "0")


def _delete_prefix(server: RedisServer, prefix: str) -> None:
    with redis.Redis.from_url(server.url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@contextmanager
def _redis_maker(server: RedisServer, tmp_path: Path) -> Iterator[StoreMaker]:
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    yield StoreMaker(backend="redis", path=tmp_path, redis_server=server, prefix=prefix)
    _delete_prefix(server, prefix)


@pytest.fixture(params=["sqlite", "redis"])
def store_maker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    """A StoreMaker for each backend (redis: the session server, a unique key prefix)."""
    if request.param == "sqlite":
        yield StoreMaker(backend="sqlite", path=tmp_path / "data" / "bridge.db")
        return
    with _redis_maker(request.getfixturevalue("redis_server"), tmp_path) as maker:
        yield maker


@pytest.fixture
def redis_store_maker(redis_server: RedisServer, tmp_path: Path) -> Iterator[StoreMaker]:
    """A StoreMaker for the Redis backend only."""
    with _redis_maker(redis_server, tmp_path) as maker:
        yield maker


@pytest.fixture
async def store(store_maker: StoreMaker) -> AsyncIterator[Store]:
    """An open store of each backend."""
    async with store_maker.open() as opened:
        yield opened
