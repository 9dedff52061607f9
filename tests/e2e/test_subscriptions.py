"""Subscriptions through the real bridge process: made over /v1/, routed at commit by the
listener's replica, delivered and signed; on Redis, across two replicas."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import BridgeProcess, to_toml
from tests.plugins.e2e import BOTH_STORES, CLIENT_ID, Harness
from tests.plugins.services import free_port

ADMIN = "e2e-admin-token-0123456789abcdef"
TENANTS = 6
API = {
    "admin_tokens": [ADMIN],
    "allow_private_targets": True,
    "retry_s": [0, 0.3, 0.3],
    "timeout_s": 2,
}


def _config(e2e: Harness, instance: str, tenants: int) -> tuple[Path, str]:
    doc: dict[str, Any] = tomllib.loads(e2e.write_config(sinks=[]).read_text(encoding="utf-8"))
    port = free_port()
    doc["bridge"].update(instance_id=instance, lease_ttl_s=2.0, http_listen=f"127.0.0.1:{port}")
    secret = doc["tenants"][0]["client_secret"]
    doc["tenants"] = [
        {"name": f"t{i}", "client_id": CLIENT_ID, "client_secret": secret} for i in range(tenants)
    ]
    doc["api"] = API
    path = e2e.tmp / f"{instance}.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    return path, f"http://127.0.0.1:{port}"


async def _start(e2e: Harness, instance: str, tenants: int = 1) -> tuple[BridgeProcess, str]:
    config, url = _config(e2e, instance, tenants)
    bridge = BridgeProcess(
        config=config, http_url=url, log_path=e2e.tmp / f"{instance}.log", cwd=e2e.tmp
    )
    e2e.bridges.append(bridge)
    bridge.start()
    await bridge.wait_ready(e2e.http)
    return bridge, url


async def _subscribe(e2e: Harness, base: str, path: str) -> str:
    body = {"url": e2e.receiver.url(path), "secret": e2e.webhook_secret}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with e2e.http.post(f"{base}/v1/subscriptions", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


def _subjects(e2e: Harness, path: str) -> set[str]:
    return {h.event["data"]["subject"] for h in e2e.receiver.delivered(path)}


@BOTH_STORES
@pytest.mark.timeout(90)
async def test_a_subscription_gets_the_mail_from_the_listener(e2e: Harness) -> None:
    """A subscription made over /v1/ receives the next mail, signed, under its event id."""
    _, base = await _start(e2e, "solo")
    await _subscribe(e2e, base, "/sub")
    await asyncio.sleep(1.5)  # within the registry's refresh (routing is already loaded)
    e2e.mail("bob@acme.com", "你好 subscription")
    await e2e.until(lambda: _subjects(e2e, "/sub") == {"你好 subscription"}, "the delivery")
    [hit] = e2e.receiver.delivered("/sub")
    assert hit.content_type == "application/cloudevents+json"
    assert hit.webhook_id == hit.event["id"]


async def _listening(e2e: Harness, bridge: BridgeProcess) -> float:
    return (await bridge.scrape(e2e.http)).value("exmail_bridge_tenants", state="listening")


async def _committed(e2e: Harness, bridge: BridgeProcess) -> float:
    return (await bridge.scrape(e2e.http)).value("exmail_bridge_events_total")


@pytest.mark.parametrize("e2e_store", ["redis"], indirect=True)
@pytest.mark.timeout(150)
async def test_two_replicas_both_deliver_a_subscription_made_on_one(e2e: Harness) -> None:
    """A subscription made on one replica gets the mails committed by either replica."""
    one, base_one = await _start(e2e, "r1", TENANTS)
    two, _ = await _start(e2e, "r2", TENANTS)

    async def split() -> bool:
        a, b = await _listening(e2e, one), await _listening(e2e, two)
        return a > 0 and b > 0 and a + b == TENANTS

    await e2e.until(split, "the tenants split between the replicas")
    await _subscribe(e2e, base_one, "/sub")
    await asyncio.sleep(2.5)
    sent: set[str] = set()
    for round_ in range(6):
        for n in range(8):
            subject = f"mail {round_}-{n}"
            e2e.mail("bob@acme.com", subject)
            sent.add(subject)
        await e2e.until(lambda: _subjects(e2e, "/sub") == sent, "every mail delivered")
        if await _committed(e2e, one) > 0 and await _committed(e2e, two) > 0:
            break
    assert await _committed(e2e, one) > 0
    assert await _committed(e2e, two) > 0
