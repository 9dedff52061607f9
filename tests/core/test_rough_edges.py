"""Rough edges a new user hits: busy ports, relative store paths, CLI help and messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bridge.config import load_config
from tests.core.test_cli import _cli, _config
from tests.plugins.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def held_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _assert_one_line_naming(code: int, err: str, address: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == f"error: cannot listen on {address}: address already in use", err


async def test_run_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """`run` with http_listen taken exits 2 with one line naming the address."""
    config = _config(tmp_path, "http://127.0.0.1:9", "k")
    with held_port() as port:
        text = config.read_text(encoding="utf-8")
        text = text.replace("[bridge]\n", f'[bridge]\nhttp_listen = "127.0.0.1:{port}"\n', 1)
        config.write_text(text, encoding="utf-8")
        code, _, err = await _cli("run", "-c", str(config))
    _assert_one_line_naming(code, err, f"127.0.0.1:{port}")


async def test_simulate_on_a_busy_port_says_so_in_one_line() -> None:
    """`simulate --port` on a taken port exits 2 with one line naming the address."""
    with held_port() as port:
        code, _, err = await _cli("simulate", "--port", str(port), "--wecom-port", "0")
    _assert_one_line_naming(code, err, f"127.0.0.1:{port}")


async def test_demo_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """`demo` whose simulator port is taken exits 2 with one line naming the address."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace("sqlite:///./data/bridge.db", f"sqlite:///{tmp_path}/bridge.db")
    for old in ("12212", "9480", "9464"):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{free_port()}")
    with held_port() as port:
        text = text.replace("127.0.0.1:12211", f"127.0.0.1:{port}")
        (tmp_path / "config.toml").write_text(text, encoding="utf-8")
        code, _, err = await _cli("demo", "-c", str(tmp_path / "config.toml"), "--duration", "5")
    _assert_one_line_naming(code, err, f"127.0.0.1:{port}")


async def test_check_connect_names_the_url_that_failed(tmp_path: Path) -> None:
    """A failing `check --connect` names the token URL it could not use, and why."""
    url = f"http://127.0.0.1:{free_port()}"
    code, out, _ = await _cli("check", "--connect", "-c", str(_config(tmp_path, url, "k")))
    assert code == 1
    assert f"tenant acme: FAILED: {url}/cgi-bin/token: connection failed: Connection refused" in out


@pytest.mark.parametrize("command", ["run", "check", "demo", "dlq"])
async def test_config_help_mentions_the_fallback(command: str) -> None:
    """`-c` help says where the config comes from without it."""
    extra = ["list"] if command == "dlq" else []
    code, out, _ = await _cli(command, *extra, "--help")
    assert code == 0
    assert "./config.toml" in " ".join(out.split())


def _relative_store_config(folder: Path, store: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f'[bridge]\nstore = "{store}"\n', encoding="utf-8")
    return path


def test_relative_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///data/b.db` in /x/config.toml means /x/data/b.db, wherever we run from."""
    config = _relative_store_config(tmp_path / "etc", "sqlite:///data/b.db")
    monkeypatch.chdir(tmp_path)
    assert load_config(config).bridge.store == f"sqlite:///{tmp_path}/etc/data/b.db"
    assert load_config(config).bridge.store.startswith("sqlite:////")


def test_a_database_left_by_the_old_rule_is_still_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that exists only under the working directory (older rule) stays in use."""
    config = _relative_store_config(tmp_path / "etc", "sqlite:///data/b.db")
    (tmp_path / "run" / "data").mkdir(parents=True)
    (tmp_path / "run" / "data" / "b.db").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "run")
    assert load_config(config).bridge.store == f"sqlite:///{tmp_path}/run/data/b.db"


def test_absolute_and_redis_stores_are_untouched(tmp_path: Path) -> None:
    """Absolute SQLite paths and Redis URLs are taken as written."""
    absolute = _relative_store_config(tmp_path / "a", f"sqlite:///{tmp_path}/x.db")
    assert load_config(absolute).bridge.store == f"sqlite:///{tmp_path}/x.db"
    redis = _relative_store_config(tmp_path / "b", "redis://127.0.0.1:6379/0")
    assert load_config(redis).bridge.store == "redis://127.0.0.1:6379/0"
