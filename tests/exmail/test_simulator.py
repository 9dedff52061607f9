"""The simulator itself: its control API, its queues, its scale, and its command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.errors import ConfigError, UpstreamRejected, UpstreamUnavailable
from bridge.exmail.client import ExmailClient
from bridge.exmail.pushes import MailPush, UnreadPush, VersionPush
from bridge.exmail.session import make_session
from bridge.simulator.serve import load_credentials
from tests.exmail.helpers import ACME, collect, until
from tests.plugins.services import free_port, wait_port
from tests.plugins.sim import ExmailSim


async def control(sim: ExmailSim, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST (or GET when body is None) to the control API; the JSON answer."""
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(f"{sim.url}/_sim/{path}") as resp:
                return await resp.json()
        async with http.post(f"{sim.url}/_sim/{path}", json=body) as resp:
            return {"status": resp.status, **await resp.json()}


async def test_mail_over_http_control_api(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """POST /_sim/mail answers a mail_id and the next listen delivers that mail."""
    await client.fetch_token(tenant)  # without --tenants, a tenant is known once it did
    answer = await control(
        exmail_sim,
        "mail",
        {"tenant": ACME, "to": "bob@acme.com", "from": "a@b.c", "subject": "S", "summary": "x"},
    )
    pushes = await collect(client, tenant)
    assert isinstance(pushes[0], MailPush)
    assert pushes[0].mail_id == answer["mail_id"]


@pytest.mark.parametrize("name", ["acme", "nobody@acme.com"])
async def test_mail_to_an_unknown_tenant_is_404(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, name: str
) -> None:
    """POST /_sim/mail naming no known client_id (or a tenant's name) is a 404 naming `tenant`."""
    await client.fetch_token(tenant)
    answer = await control(exmail_sim, "mail", {"tenant": name, "to": "bob@acme.com"})
    assert answer["status"] == 404
    assert answer["error"].startswith(f"tenant: no tenant with client_id {name!r}")


async def test_directory_unread_and_stats_over_http(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Users, unread counts and stats are reachable through /_sim/ too."""
    added = await control(
        exmail_sim, "users", {"tenant": ACME, "action": "add", "alias": "c@acme.com"}
    )
    await control(exmail_sim, "unread", {"tenant": ACME, "mailbox": "c@acme.com", "count": 3})
    await control(exmail_sim, "read", {"tenant": ACME, "mailbox": "c@acme.com"})
    await control(exmail_sim, "settings", {"framing": "ndjson"})
    assert await collect(client, tenant) == [
        VersionPush(added["ver"]),
        UnreadPush("c@acme.com", 3),
        UnreadPush("c@acme.com", 2),
    ]
    stats = await control(exmail_sim, f"stats?tenant={ACME}")
    assert (stats["token_requests"], stats["listen_requests"], stats["ver"]) == (1, 1, added["ver"])


async def test_faults_over_http(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """POST /_sim/faults sets faults for a number of requests; DELETE clears them."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 1)
    fault = {"tenant": ACME, "err_1002": 1.0, "times": 1, "endpoints": ["mail/newcount"]}
    assert (await control(exmail_sim, "faults", fault))["status"] == 200
    with pytest.raises(UpstreamUnavailable):
        await client.newcount(tenant, "bob@acme.com")
    assert await client.newcount(tenant, "bob@acme.com") == 1
    await control(exmail_sim, "faults", {"http_5xx": 1.0})
    with pytest.raises(UpstreamUnavailable):
        await client.newcount(tenant, "bob@acme.com")
    async with aiohttp.ClientSession() as http, http.delete(f"{exmail_sim.url}/_sim/faults"):
        pass
    assert await client.newcount(tenant, "bob@acme.com") == 1


async def test_bad_control_request(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A control call with a missing field or unknown setting answers 400."""
    await client.fetch_token(tenant)
    assert (await control(exmail_sim, "mail", {"tenant": ACME}))["status"] == 400
    assert (await control(exmail_sim, "faults", {"nonsense": 1}))["status"] == 400
    assert (await control(exmail_sim, "settings", {"framing": "xml"}))["status"] == 400


async def test_reset(exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig) -> None:
    """POST /_sim/reset forgets queues, tokens and counters."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 1)
    await client.fetch_token(tenant)
    await control(exmail_sim, "reset", {})
    assert exmail_sim.state.stats(ACME)["queued"] == 0
    assert exmail_sim.state.stats(ACME)["token_requests"] == 0
    with pytest.raises(UpstreamRejected):  # bob is forgotten, and so is the client's token
        await client.newcount(tenant, "bob@acme.com")
    assert exmail_sim.state.stats(ACME)["token_requests"] == 1


async def test_client_gone_frees_the_listen(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A held listen whose client goes away is no longer counted as connected."""
    exmail_sim.state.configure(hold_s=30)
    task = asyncio.create_task(collect(client, tenant), name="held-listen")
    await until(lambda: exmail_sim.state.stats(ACME)["listens_connected"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: exmail_sim.state.stats(ACME)["listens_connected"] == 0)
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 9)
    assert exmail_sim.state.stats(ACME)["queued"] == 1


async def test_many_held_listens_wake_on_their_push(exmail_sim: ExmailSim) -> None:
    """Hundreds of held listens, one per tenant, each wake with their own push."""
    tenants = 300
    exmail_sim.state.configure(hold_s=20)
    settings = exmail_sim.exmail_settings(listen_hold_s=20)
    async with make_session(settings, max_connections=tenants) as session:
        client = ExmailClient(session=session, settings=settings)
        configs = [exmail_sim.tenant_config(f"t{i}", f"admin@t{i}.com") for i in range(tenants)]
        await asyncio.gather(*(client.fetch_token(t) for t in configs))
        tasks = [asyncio.create_task(collect(client, t), name=t.name) for t in configs]
        state = exmail_sim.state
        await until(
            lambda: sum(state.tenant(t.client_id).listens_connected for t in configs) == tenants
        )
        for i, t in enumerate(configs):
            exmail_sim.state.set_unread(t.client_id, f"u@t{i}.com", i)
        results = await asyncio.gather(*tasks)
    assert results == [[UnreadPush(f"u@t{i}.com", i)] for i in range(tenants)]


async def test_fixed_credentials(exmail_sim_factory: Any) -> None:
    """With a credentials file, control calls for unknown tenants are refused."""
    sim = await exmail_sim_factory(credentials={ACME: "s3cret"})
    with pytest.raises(KeyError):
        sim.state.send_mail("admin@other.com", to="x@other.com", sender="a@b.c")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.json", json.dumps({ACME: "s1"})),
        ("t.toml", f'[tenants]\n"{ACME}" = "s1"\n'),
    ],
)
def test_load_credentials(tmp_path: Path, name: str, text: str) -> None:
    """--tenants accepts JSON or TOML maps of client_id to client_secret."""
    (tmp_path / name).write_text(text)
    assert load_credentials(tmp_path / name) == {ACME: "s1"}


def test_load_credentials_rejects_other_shapes(tmp_path: Path) -> None:
    """A --tenants file that is not a string map is a ConfigError."""
    (tmp_path / "t.json").write_text("[1, 2]")
    with pytest.raises(ConfigError):
        load_credentials(tmp_path / "t.json")


async def test_simulate_command_answers_a_token_request(tmp_path: Path) -> None:
    """`exmail-bridge simulate` runs as a process and issues tokens to listed tenants only."""
    port, wecom_port = free_port(), free_port()
    (tmp_path / "t.json").write_text(json.dumps({ACME: "s1"}))
    cmd = [sys.executable, "-m", "bridge.cli", "simulate", "--port", str(port)]
    cmd += ["--wecom-port", str(wecom_port), "--tenants", str(tmp_path / "t.json")]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.to_thread(wait_port, port)
        await asyncio.to_thread(wait_port, wecom_port)
        async with aiohttp.ClientSession() as http:
            form = {"grant_type": "client_credentials", "client_id": ACME}
            async with http.post(
                f"http://127.0.0.1:{port}/cgi-bin/token", data={**form, "client_secret": "s1"}
            ) as ok:
                assert "access_token" in await ok.json()
            async with http.post(
                f"http://127.0.0.1:{port}/cgi-bin/token", data={**form, "client_secret": "no"}
            ) as refused:
                assert refused.status == 401
            async with http.get(f"http://127.0.0.1:{wecom_port}/cgi-bin/gettoken") as wecom:
                assert "errcode" in await wecom.json()
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
