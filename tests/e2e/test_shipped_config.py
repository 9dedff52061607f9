"""The shipped config.toml, run as is against `exmail-bridge simulate`: clean and delivering."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.process import BridgeProcess, run_cli
from tests.plugins.services import MosquittoServer, free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


def _shipped_config(folder: Path, ports: dict[str, int], broker: str) -> Path:
    """config.toml with only its ports moved (to free ones) and its broker set; nothing else."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    for old, new in ports.items():
        assert f"127.0.0.1:{old}" in text, old
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    text = text.replace("mqtt://127.0.0.1:1883", broker)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def simulate(exmail_port: int, wecom_port: int, cwd: Path) -> Iterator[None]:
    """`exmail-bridge simulate` in a subprocess, as a user would start it."""
    args = ["simulate", "--port", str(exmail_port), "--wecom-port", str(wecom_port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(exmail_port)
        wait_port(wecom_port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        return {"status": resp.status, **await resp.json()}


async def _until(check: Any, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)


async def test_shipped_config_runs_clean_against_simulate(
    tmp_path: Path, mosquitto_server: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` with config.toml against `simulate`: /readyz 200, cards delivered, no dead letter."""
    ports = {p: free_port() for p in ("12211", "12212", "9464", "9480")}
    config = _shipped_config(tmp_path, ports, mosquitto_server.url)
    # The shipped file leaves http_listen to $EXMAIL_BRIDGE_HTTP_LISTEN (the image sets it).
    monkeypatch.setenv("EXMAIL_BRIDGE_HTTP_LISTEN", f"127.0.0.1:{ports['9464']}")
    sim = f"http://127.0.0.1:{ports['12211']}"
    wecom = f"http://127.0.0.1:{ports['12212']}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bridge = BridgeProcess(
        config=config,
        http_url=f"http://127.0.0.1:{ports['9464']}",
        log_path=tmp_path / "bridge.log",
        cwd=elsewhere,
    )
    with simulate(ports["12211"], ports["12212"], elsewhere):
        bridge.start()
        try:
            async with aiohttp.ClientSession() as session:
                await bridge.wait_ready(session)

                async def listening() -> bool:
                    stats = await _json(session, "GET", f"{sim}/_sim/stats?tenant=admin@acme.com")
                    return int(stats["listen_requests"]) > 0

                await _until(listening)
                for to in ("bob@acme.com", "carol@acme.com"):
                    mail = {"tenant": "admin@acme.com", "to": to, "subject": f"hi {to}"}
                    assert (await _json(session, "POST", f"{sim}/_sim/mail", json=mail))[
                        "status"
                    ] == 200

                async def carded() -> bool:
                    bob = await _json(session, "GET", f"{wecom}/_sim/messages/bob")
                    carol = await _json(session, "GET", f"{wecom}/_sim/messages/carol")
                    return bool(bob["messages"]) and bool(carol["messages"])

                await _until(carded)
                assert await bridge.get_status(session, "/readyz") == 200
            bridge.signal(signal.SIGTERM)
            assert await bridge.wait_exit(15) == 0
        finally:
            bridge.kill()
    dlq = await run_cli("dlq", "list", "-c", str(config), cwd=elsewhere)
    assert "0 dead letter(s)" in dlq.out, dlq.out + dlq.err
    assert (tmp_path / "data" / "bridge.db").exists()  # next to the config, not in cwd
    warnings = [e for e in bridge.log_events() if e.get("level") not in ("debug", "info")]
    assert warnings == []
