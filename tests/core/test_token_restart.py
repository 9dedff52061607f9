"""A restarted bridge keeps its upstream tokens: its listens start without a token request."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import redis
from structlog.testing import capture_logs

from bridge.config import Config, parse_config
from bridge.errors import StoreError
from bridge.store.redis import RedisStore
from bridge.store.sqlite import SqliteStore
from tests.core.test_startup import running
from tests.plugins.services import RedisServer, free_port
from tests.plugins.sim import ExmailSim

TENANTS = 10


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The `[bridge]` store settings of each backend (redis: a prefix of its own)."""
    if request.param == "sqlite":
        yield {"store": f"sqlite:///{tmp_path}/bridge.db"}
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    yield {"store": server.url, "redis_prefix": prefix}
    with redis.Redis.from_url(server.url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


def _config(sim: ExmailSim, store: dict[str, str], secret: str = "k") -> Config:  # noqa: S107  (a fake)
    return parse_config(
        {
            "bridge": {**store, "http_listen": f"127.0.0.1:{free_port()}", "instance_id": "solo"},
            "exmail": {
                "token_url": f"{sim.url}/cgi-bin/token",
                "api_base": sim.url,
                "listen_hold_s": 60.0,
                "backoff_base_s": 0.05,
            },
            "tenants": [
                {"name": f"t{i}", "client_id": f"admin@t{i}.com", "client_secret": secret}
                for i in range(TENANTS)
            ],
        },
        env={},
    )


def _held(sim: ExmailSim) -> int:
    return sum(t.listens_connected for t in sim.state.tenants.values())


async def _until_held(sim: ExmailSim, count: int) -> None:
    async with asyncio.timeout(30):
        while _held(sim) != count:
            await asyncio.sleep(0.02)


async def _hold_all(sim: ExmailSim, config: Config) -> None:
    """Run the bridge until every tenant's listen is held, then stop it."""
    async with running(config):
        await _until_held(sim, TENANTS)
    await _until_held(sim, 0)


def _token_requests(sim: ExmailSim) -> int:
    return sum(sim.state.token_requests.values())


@pytest.fixture
def sim(exmail_sim: ExmailSim) -> ExmailSim:
    """The simulator, holding every listen for a minute."""
    exmail_sim.state.configure(hold_s=60.0)
    return exmail_sim


async def test_restart_holds_every_listen_without_a_token_request(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """A restarted bridge loads its tokens (one store call) and asks for none."""
    await _hold_all(sim, _config(sim, store_url))
    assert _token_requests(sim) == TENANTS
    sim.state.token_requests.clear()
    with capture_logs() as logs:
        await _hold_all(sim, _config(sim, store_url))
    assert _token_requests(sim) == 0
    loads = [e for e in logs if e["event"] == "upstream_tokens_loaded"]
    assert [(e["wanted"], e["opened"]) for e in loads] == [(TENANTS, TENANTS)]


async def test_a_rotated_secret_fetches_new_tokens(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """Tokens stored under the old secret do not open: each tenant fetches anew, no error."""
    sim.state.credentials = {f"admin@t{i}.com": "old" for i in range(TENANTS)}
    await _hold_all(sim, _config(sim, store_url, secret="old"))
    sim.state.credentials = {f"admin@t{i}.com": "new" for i in range(TENANTS)}
    sim.state.token_requests.clear()
    await _hold_all(sim, _config(sim, store_url, secret="new"))
    assert _token_requests(sim) == TENANTS


async def test_nearly_expired_tokens_are_fetched_anew(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """Tokens that would be refreshed within 5 minutes anyway are not used after a restart."""
    sim.state.configure(token_expires_in_s=500)  # 300 s margin: 200 s of use left
    await _hold_all(sim, _config(sim, store_url))
    sim.state.token_requests.clear()
    await _hold_all(sim, _config(sim, store_url))
    assert _token_requests(sim) == TENANTS


async def _failing_save(*_: Any) -> None:
    raise StoreError("disk on fire", backend="test", op="save_upstream_token")


async def test_a_failing_token_write_still_listens_and_logs_once(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """Every tenant listens though no token can be stored; one log line says so, no token."""
    backend = SqliteStore if store_url["store"].startswith("sqlite") else RedisStore
    with (
        patch.object(backend, "save_upstream_token", _failing_save),
        capture_logs() as logs,
    ):
        await _hold_all(sim, _config(sim, store_url))
    failed = [e for e in logs if e["event"] == "upstream_token_save_failed"]
    assert len(failed) == 1
    tokens = list(sim.state.tokens)
    assert len(tokens) == TENANTS
    assert not any(token in repr(logs) for token in tokens)


def _stored_bytes(store_url: dict[str, str]) -> bytes:
    """Every byte the store holds: the SQLite files, or every key and value under the prefix."""
    url = store_url["store"]
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in db.parent.glob(f"{db.name}*"))
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{store_url['redis_prefix']}*"))
        return b"".join(key + (client.dump(key) or b"") for key in keys)


async def test_no_token_can_be_read_from_the_store(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """The stored tokens are sealed: no token string is in the store's files or values."""
    await _hold_all(sim, _config(sim, store_url))
    tokens = list(sim.state.tokens)
    assert len(tokens) == TENANTS
    dump = _stored_bytes(store_url)
    assert b"uptoken:" in dump or b"upstream_tokens" in dump  # the tokens are in there
    assert not any(token.encode() in dump for token in tokens)


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
async def test_a_replica_takes_tenants_over_without_token_requests(
    sim: ExmailSim, store_url: dict[str, str]
) -> None:
    """A replica joining on Redis listens for its share with the tokens the first one stored."""
    store = store_url

    def replica(name: str) -> Config:
        config = _config(sim, store)
        bridge = config.bridge.model_copy(update={"instance_id": name, "lease_ttl_s": 3.0})
        return config.model_copy(update={"bridge": bridge})

    async with running(replica("a")):
        await _until_held(sim, TENANTS)
        assert _token_requests(sim) == TENANTS
        async with running(replica("b")), asyncio.timeout(30):
            while sum(sim.state.listen_requests.values()) <= TENANTS:
                await asyncio.sleep(0.02)  # some tenants moved to b and listened again
            await _until_held(sim, TENANTS)
            assert _token_requests(sim) == TENANTS


async def test_forged_sqlite_rows_are_fetched_anew(sim: ExmailSim, tmp_path: Path) -> None:
    """Forged rows (text or a number as the sealed value) are misses: every tenant listens."""
    store_url = {"store": f"sqlite:///{tmp_path}/bridge.db"}
    await _hold_all(sim, _config(sim, store_url))
    with sqlite3.connect(tmp_path / "bridge.db") as conn:
        conn.execute("UPDATE upstream_tokens SET sealed = 'forged' WHERE key LIKE 'exmail/t0/%'")
        conn.execute(
            "UPDATE upstream_tokens SET sealed = 10000000000000 WHERE key LIKE 'exmail/t1/%'"
        )
    conn.close()
    sim.state.token_requests.clear()
    await _hold_all(sim, _config(sim, store_url))
    assert _token_requests(sim) == 2
