"""The contract for upstream tokens kept across restarts: sealed bytes by key, expiring."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import redis

from bridge.store.base import Store
from bridge.store.sqlite import SqliteStore
from bridge.store.upstream_tokens import LOAD_CHUNK
from tests.plugins.store import StoreMaker


async def test_saved_tokens_load_back_by_key(store: Store) -> None:
    """A load answers the saved bytes of the keys asked for; keys without one are absent."""
    later = time.time() + 3600
    await store.save_upstream_token("exmail/a/x", b"sealed-a", later)
    await store.save_upstream_token("exmail/b/x", b"sealed-b", later)
    assert await store.load_upstream_tokens(["exmail/a/x", "exmail/c/x"]) == {
        "exmail/a/x": b"sealed-a"
    }
    assert await store.load_upstream_tokens([]) == {}


async def test_a_save_replaces_the_key(store: Store) -> None:
    """The newest save under a key wins."""
    later = time.time() + 3600
    await store.save_upstream_token("k", b"old", later)
    await store.save_upstream_token("k", b"new", later + 10)
    assert await store.load_upstream_tokens(["k"]) == {"k": b"new"}


async def test_expired_tokens_are_never_loaded(store: Store) -> None:
    """A token whose expiry has passed is gone from the store, replaced or not."""
    await store.save_upstream_token("gone", b"x", time.time() - 1)
    await store.save_upstream_token("kept", b"y", time.time() + 3600)
    await store.save_upstream_token("kept", b"z", time.time() - 1)
    assert await store.load_upstream_tokens(["gone", "kept"]) == {}


async def test_many_keys_load_in_one_call(store: Store) -> None:
    """More keys than one `IN (...)` list or MGET holds still load in one call."""
    later = time.time() + 3600
    keys = [f"exmail/t{i}/x" for i in range(LOAD_CHUNK * 2 + 7)]
    for i, key in enumerate(keys):
        if i % 3 == 0:
            await store.save_upstream_token(key, f"s{i}".encode(), later)
    found = await store.load_upstream_tokens(keys)
    assert found == {k: f"s{i}".encode() for i, k in enumerate(keys) if i % 3 == 0}


async def test_tokens_survive_a_restart(store_maker: StoreMaker) -> None:
    """Saved tokens are durable: a reopened (or restarted) store still has them."""
    async with store_maker.open() as store:
        await store.save_upstream_token("k", b"sealed", time.time() + 3600)
    store_maker.restart()
    async with store_maker.open() as store:
        assert await store.load_upstream_tokens(["k"]) == {"k": b"sealed"}


async def test_redis_keeps_a_token_only_until_it_expires(redis_store_maker: StoreMaker) -> None:
    """Redis holds each token with a TTL no longer than its remaining lifetime."""
    async with redis_store_maker.open() as store:
        await store.save_upstream_token("k", b"sealed", time.time() + 100)
    assert redis_store_maker.redis_server is not None
    with redis.Redis.from_url(redis_store_maker.redis_server.url) as client:
        ttl_ms = client.pttl(f"{redis_store_maker.prefix}uptoken:k")
    assert 0 < ttl_ms <= 100_000


async def test_sqlite_skips_a_row_that_is_not_sealed_bytes(tmp_path: Path) -> None:
    """A forged row whose `sealed` is text or a number is absent from a load, not a crash."""
    path, later = tmp_path / "bridge.db", time.time() + 3600
    async with SqliteStore(path=path, dedupe_window_s=3600.0) as store:
        await store.save_upstream_token("good", b"sealed", later)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO upstream_tokens VALUES (?, ?, ?)",
            [("text", "forged", later), ("huge", 10**15, later), ("real", 1.5, later)],
        )
    async with SqliteStore(path=path, dedupe_window_s=3600.0) as store:
        found = await store.load_upstream_tokens(["good", "text", "huge", "real"])
    assert found == {"good": b"sealed"}
