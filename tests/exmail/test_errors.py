"""Upstream failures map onto the bridge's error tree, and never hang or blow up memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.errors import (
    RateLimited,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bridge.exmail.client import ExmailClient
from bridge.exmail.pushes import UnreadPush
from bridge.exmail.session import make_session
from tests.exmail.helpers import ACME, call, collect, sample
from tests.plugins.services import free_port
from tests.plugins.sim import ExmailSim

BOB = "bob@acme.com"


@pytest.fixture(autouse=True)
def bob_exists(exmail_sim: ExmailSim) -> None:
    """Give bob an unread count so newcount knows him."""
    exmail_sim.state.set_unread(ACME, BOB, 0)
    exmail_sim.state.tenant(ACME).queue.clear()


@pytest.mark.parametrize("fault", ["err_1002", "http_5xx"])
@pytest.mark.parametrize("endpoint", ["listen", "mail/newcount"])
async def test_unavailable(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, fault: str, endpoint: str
) -> None:
    """1002 and HTTP 5xx raise UpstreamUnavailable and are counted."""
    code = "1002" if fault == "err_1002" else "503"
    before = sample("exmail_bridge_upstream_errors_total", endpoint=endpoint, code=code)
    await client.fetch_token(tenant)
    faults: dict[str, Any] = {fault: 1.0, "endpoints": [endpoint]}
    exmail_sim.state.set_faults(**faults)
    with pytest.raises(UpstreamUnavailable) as caught:
        await call(client, tenant, endpoint)
    assert type(caught.value) is UpstreamUnavailable
    assert caught.value.code == code
    after = sample("exmail_bridge_upstream_errors_total", endpoint=endpoint, code=code)
    assert after == before + 1


async def test_rate_limited_carries_retry_after(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """HTTP 429 raises RateLimited with the server's Retry-After."""
    exmail_sim.state.set_faults(http_429=1.0, retry_after_s=7, endpoints=["mail/newcount"])
    with pytest.raises(RateLimited) as caught:
        await client.newcount(tenant, BOB)
    assert caught.value.retry_after_s == 7


@pytest.mark.parametrize("endpoint", ["listen", "mail/newcount"])
async def test_silent_socket_times_out(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, endpoint: str
) -> None:
    """A socket that never answers raises UpstreamTimeout instead of hanging."""
    await client.fetch_token(tenant)
    exmail_sim.state.set_faults(silent=True, endpoints=[endpoint])
    with pytest.raises(UpstreamTimeout):
        await call(client, tenant, endpoint)


async def test_held_listen_silent_past_its_hold_times_out(
    exmail_sim: ExmailSim, session: aiohttp.ClientSession, tenant: TenantConfig
) -> None:
    """A held listen whose body stays silent past hold + timeout ends in UpstreamTimeout."""
    exmail_sim.state.configure(hold_s=30.0)  # the upstream holds far longer than asked
    settings = exmail_sim.exmail_settings(listen_hold_s=0.2, timeout_s=0.2)
    client = ExmailClient(session=session, settings=settings)
    with pytest.raises(UpstreamTimeout):
        async with asyncio.timeout(20):  # a hang fails the test instead of blocking it
            await collect(client, tenant)


@pytest.mark.parametrize("endpoint", ["listen", "mail/newcount"])
async def test_oversized_body(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, endpoint: str
) -> None:
    """A body over max_body_bytes raises UpstreamProtocolError."""
    exmail_sim.state.set_faults(oversized_bytes=2 << 20, endpoints=[endpoint])
    with pytest.raises(UpstreamProtocolError) as caught:
        await call(client, tenant, endpoint)
    assert caught.value.code == "oversized"


async def test_ten_megabytes_are_not_buffered(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A 10 MB listen body fails at the cap without the client holding the body in memory."""
    await client.fetch_token(tenant)
    exmail_sim.state.set_faults(oversized_bytes=10 << 20, endpoints=["listen"])
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamProtocolError):
            await collect(client, tenant)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20  # well under the body; the server side shares this process


async def test_reset_mid_response_keeps_the_push(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A connection cut mid-body raises UpstreamProtocolError and the push is re-sent later."""
    exmail_sim.state.set_faults(reset=True, endpoints=["listen"])
    exmail_sim.state.set_unread(ACME, BOB, 4)
    with pytest.raises(UpstreamProtocolError):
        await collect(client, tenant)
    exmail_sim.state.clear_faults()
    assert await collect(client, tenant) == [UnreadPush(BOB, 4)]


async def test_invalid_json_answer(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A read call answered with non-JSON raises UpstreamProtocolError."""
    exmail_sim.state.set_faults(invalid_json=True, endpoints=["mail/newcount"])
    with pytest.raises(UpstreamProtocolError) as caught:
        await client.newcount(tenant, BOB)
    assert caught.value.code == "json"


@pytest.mark.parametrize(("call", "code"), [("newcount", "1400"), ("user_get", "1301")])
async def test_unknown_account_is_rejected(
    client: ExmailClient, tenant: TenantConfig, call: str, code: str
) -> None:
    """Unknown mailboxes raise UpstreamRejected with Exmail's code."""
    with pytest.raises(UpstreamRejected) as caught:
        await getattr(client, call)(tenant, "nobody@acme.com")
    assert caught.value.code == code


async def test_connection_refused(exmail_sim: ExmailSim, tenant: TenantConfig) -> None:
    """Nobody listening at the API address raises UpstreamUnavailable."""
    settings = exmail_sim.exmail_settings(token_url=f"http://127.0.0.1:{free_port()}/cgi-bin/token")
    async with make_session(settings, max_connections=1) as session:
        client = ExmailClient(session=session, settings=settings)
        with pytest.raises(UpstreamUnavailable):
            await client.fetch_token(tenant)


async def test_aiohttp_errors_do_not_leak(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Every failure the client raises is a bridge error, never an aiohttp one."""
    exmail_sim.state.set_faults(reset=True)
    with pytest.raises(UpstreamProtocolError) as caught:
        await client.newcount(tenant, BOB)
    assert not isinstance(caught.value, aiohttp.ClientError)
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
