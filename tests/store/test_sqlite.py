"""What only the SQLite store does: its URL, a full disk, surviving SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.config import BridgeSection
from bridge.errors import ConfigError, StoreError, StoreFullError
from bridge.store import open_store, sqlite_path
from bridge.store.sqlite import SqliteStore
from tests.store.test_contract import routed


def test_sqlite_urls_name_relative_and_absolute_files() -> None:
    """Three slashes give a relative path, four an absolute one."""
    assert sqlite_path("sqlite:///./data/bridge.db") == Path("./data/bridge.db")
    assert sqlite_path("sqlite:///data/b.db") == Path("data/b.db")
    assert sqlite_path("sqlite:////var/lib/b.db") == Path("/var/lib/b.db")
    with pytest.raises(ConfigError):
        sqlite_path("sqlite://host/b.db")


async def test_open_store_creates_parent_directories(tmp_path: Path) -> None:
    """open_store makes the database's directory and the file is usable at once."""
    path = tmp_path / "a" / "b" / "bridge.db"
    async with open_store(BridgeSection(store=f"sqlite:///{path}")) as store:
        assert store.backend == "sqlite"
        await store.commit("acme", routed(1), new_ver="5")
    assert path.exists()


async def test_full_disk_raises_store_full_and_loses_nothing(tmp_path: Path) -> None:
    """A commit the full disk refuses raises StoreFullError, keeps old data, shows in full()."""
    async with SqliteStore(path=tmp_path / "b.db", dedupe_window_s=3600) as store:
        await store.commit("acme", routed(1), new_ver="1")
        db = store._db  # the fault is a pragma on the store's own connection
        pages = (await store._call("t", db.execute, "PRAGMA page_count")).fetchone()[0]
        await store._call("t", db.execute, f"PRAGMA max_page_count={pages}")
        big = routed(*range(2, 200), sinks=("oa", "bus", "chat"))
        with pytest.raises(StoreFullError):
            await store.commit("acme", big, new_ver="2")
        assert await store.get_version("acme") == "1"
        assert await store.backlog("oa") == 1
        await store.ping()  # a full store still answers a ping, but full() says why
        assert store.full() == "store full: sqlite store, commit: database or disk is full"
        await store._call("t", db.execute, "PRAGMA max_page_count=1073741823")
        assert (await store.commit("acme", routed(2), new_ver="2")).emitted == 1
        assert store.full() is None


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from bridge.store.sqlite import SqliteStore
    from tests.store.test_contract import routed

    async def main():
        async with SqliteStore(path=Path(sys.argv[1]), dedupe_window_s=3600) as store:
            await store.commit("acme", routed(1, 2), new_ver="77")
            os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_committed_events_survive_sigkill(tmp_path: Path) -> None:
    """A commit that returned is on disk even if the process is killed right after."""
    path = tmp_path / "killed.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_WRITER,
        str(path),
        cwd=Path(__file__).parents[2],
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, stderr = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    async with SqliteStore(path=path, dedupe_window_s=3600) as store:
        assert await store.get_version("acme") == "77"
        assert await store.backlog("oa") == 2


async def test_a_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    """A database path under a plain file is a StoreError naming the path, no traceback."""
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    with pytest.raises(StoreError) as info:
        async with SqliteStore(path=tmp_path / "plain" / "b.db", dedupe_window_s=60):
            pass
    assert info.value.op == "open"
    assert str(tmp_path / "plain") in str(info.value)


async def test_one_running_bridge_per_database(tmp_path: Path) -> None:
    """A second running bridge on the same file is refused; the CLI may still open it."""
    path = tmp_path / "b.db"
    async with SqliteStore(path=path, dedupe_window_s=60, exclusive=True) as running:
        await running.commit("acme", routed(1), new_ver="1")
        with pytest.raises(StoreError) as info:
            async with SqliteStore(path=path, dedupe_window_s=60, exclusive=True):
                pass
        assert info.value.op == "lock"
        assert "another bridge is running on" in str(info.value)
        async with SqliteStore(path=path, dedupe_window_s=60) as cli:
            assert await cli.get_version("acme") == "1"
    async with SqliteStore(path=path, dedupe_window_s=60, exclusive=True) as next_run:
        assert await next_run.get_version("acme") == "1"


async def test_running_bridge_reads_versions_stored_before_and_committed_since(
    tmp_path: Path,
) -> None:
    """The running bridge's versions: those of an earlier run, then its own commits."""
    path = tmp_path / "b.db"
    async with SqliteStore(path=path, dedupe_window_s=60, exclusive=True) as earlier:
        for i in range(30):
            await earlier.commit(f"t{i}", [], new_ver=str(100 + i))
    async with SqliteStore(path=path, dedupe_window_s=60, exclusive=True) as running:
        found = await asyncio.gather(*(running.get_version(f"t{i}") for i in range(30)))
        assert found == [str(100 + i) for i in range(30)]
        assert await running.get_version("new") == "0"
        await running.commit("t0", routed(1), new_ver="500")
        await running.commit("new", [], new_ver="7")
        await running.commit("t1", routed(2))  # no version: t1 keeps its own
        assert await running.get_version("t0") == "500"
        assert await running.get_version("new") == "7"
        assert await running.get_version("t1") == "101"
        async with SqliteStore(path=path, dedupe_window_s=60) as cli:  # the same, on disk
            assert await cli.get_version("t0") == "500"
