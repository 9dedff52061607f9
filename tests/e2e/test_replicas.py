"""Two bridge processes on one Redis: tenants split between them, a killed one's move over."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import BridgeProcess, to_toml
from tests.plugins.e2e import CLIENT_ID, Harness
from tests.plugins.services import free_port

TENANTS = 8
LEASE_TTL_S = 2.0


def _replica_config(e2e: Harness, instance: str) -> tuple[Path, str]:
    doc: dict[str, Any] = tomllib.loads(
        e2e.write_config(sinks=[e2e.webhook_sink()]).read_text(encoding="utf-8")
    )
    port = free_port()
    doc["bridge"].update(
        instance_id=instance, lease_ttl_s=LEASE_TTL_S, http_listen=f"127.0.0.1:{port}"
    )
    secret = doc["tenants"][0]["client_secret"]
    doc["tenants"] = [
        {"name": f"t{i}", "client_id": CLIENT_ID, "client_secret": secret} for i in range(TENANTS)
    ]
    path = e2e.tmp / f"{instance}.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    return path, f"http://127.0.0.1:{port}"


async def _start(e2e: Harness, instance: str) -> BridgeProcess:
    config, url = _replica_config(e2e, instance)
    bridge = BridgeProcess(
        config=config, http_url=url, log_path=e2e.tmp / f"{instance}.log", cwd=e2e.tmp
    )
    e2e.bridges.append(bridge)
    bridge.start()
    await bridge.wait_ready(e2e.http)
    return bridge


async def _listening(e2e: Harness, bridge: BridgeProcess) -> float:
    return (await bridge.scrape(e2e.http)).value("exmail_bridge_tenants", state="listening")


@pytest.mark.parametrize("e2e_store", ["redis"], indirect=True)
@pytest.mark.timeout(120)
async def test_replicas_split_tenants_and_take_over(e2e: Harness) -> None:
    """Each tenant is listened for by one replica; SIGKILL one, the other takes all."""
    one = await _start(e2e, "r1")
    two = await _start(e2e, "r2")

    async def split() -> bool:
        a, b = await _listening(e2e, one), await _listening(e2e, two)
        return a > 0 and b > 0 and a + b == TENANTS

    await e2e.until(split, "the tenants split between the replicas")
    one.kill()

    async def took_over() -> bool:
        return await _listening(e2e, two) == TENANTS

    await e2e.until(took_over, "the survivor listening for every tenant", timeout_s=30)
