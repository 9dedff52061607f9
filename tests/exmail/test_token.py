"""Tokens: fetched once, shared, refreshed before expiry, replaced once on 1200."""

from __future__ import annotations

import asyncio
import base64
from unittest.mock import patch

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.errors import CredentialsError, TokenInvalidError, UpstreamUnavailable
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.ratelimit import RateLimiter
from bridge.simulator.exmail_faults import SimSettings
from tests.exmail.helpers import ACME, collect, sample
from tests.plugins.sim import ExmailSim, ExmailSimFactory


async def test_one_token_for_many_calls(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Concurrent calls of one tenant share a single token request (single flight)."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 2)
    counts = await asyncio.gather(*(client.newcount(tenant, "bob@acme.com") for _ in range(10)))
    assert counts == [2] * 10
    assert exmail_sim.state.stats(ACME)["token_requests"] == 1


async def test_tokens_are_per_tenant(exmail_sim: ExmailSim, client: ExmailClient) -> None:
    """Each tenant gets its own token with its own credential."""
    acme = exmail_sim.tenant_config()
    beta = exmail_sim.tenant_config(name="beta", client_id="admin@beta.com")
    exmail_sim.state.set_unread("admin@beta.com", "x@beta.com", 5)
    assert await client.newcount(beta, "x@beta.com") == 5
    await client.fetch_token(acme)
    assert exmail_sim.state.stats(ACME)["token_requests"] == 1
    assert exmail_sim.state.stats("admin@beta.com")["token_requests"] == 1


async def test_invalid_token_refreshes_once_then_succeeds(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A revoked token (1200) causes exactly one new token request, then the call succeeds."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 3)
    assert await client.newcount(tenant, "bob@acme.com") == 3
    exmail_sim.state.revoke_tokens(ACME)
    assert await client.newcount(tenant, "bob@acme.com") == 3
    assert exmail_sim.state.stats(ACME)["token_requests"] == 2


async def test_invalid_token_on_listen_refreshes_once(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """listen() also replaces a revoked token once and then delivers the pushes."""
    await client.fetch_token(tenant)
    exmail_sim.state.revoke_tokens(ACME)
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 1)
    pushes = [p async for p in client.listen(tenant, "0")]
    assert len(pushes) == 1
    assert exmail_sim.state.stats(ACME)["token_requests"] == 2


async def test_second_invalid_token_raises(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """If the fresh token is rejected too, TokenInvalidError is raised (no loop)."""
    exmail_sim.state.set_faults(err_1200=1.0, endpoints=["mail/newcount"])
    with pytest.raises(TokenInvalidError):
        await client.newcount(tenant, "bob@acme.com")
    assert exmail_sim.state.stats(ACME)["token_requests"] == 2


async def test_expired_token_is_replaced(exmail_sim_factory: ExmailSimFactory) -> None:
    """A token is fetched again once it nears its expiry."""
    sim = await exmail_sim_factory(settings=SimSettings(hold_s=0.5, token_expires_in_s=1))
    tenant = sim.tenant_config()
    sim.state.set_unread(ACME, "bob@acme.com", 1)
    async with make_session(sim.exmail_settings(), max_connections=1) as session:
        client = ExmailClient(session=session, settings=sim.exmail_settings())
        await client.newcount(tenant, "bob@acme.com")
        await asyncio.sleep(1.1)  # the simulator's token has expired by now
        assert await client.newcount(tenant, "bob@acme.com") == 1
    assert sim.state.stats(ACME)["token_requests"] == 2


async def test_bad_credentials(exmail_sim_factory: ExmailSimFactory) -> None:
    """A refused credential raises CredentialsError and counts a failed token fetch."""
    sim = await exmail_sim_factory(credentials={ACME: "right"})
    before = sample("exmail_bridge_token_refreshes_total", provider="exmail", outcome="error")
    async with make_session(sim.exmail_settings(), max_connections=1) as session:
        client = ExmailClient(session=session, settings=sim.exmail_settings())
        with pytest.raises(CredentialsError):
            await client.fetch_token(sim.tenant_config(secret="wrong"))
        await client.fetch_token(sim.tenant_config(secret="right"))
    after = sample("exmail_bridge_token_refreshes_total", provider="exmail", outcome="error")
    assert after == before + 1


async def test_token_endpoint_outage_is_not_a_credential_error(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A 5xx from the token endpoint is a transient outage, not a bad credential."""
    exmail_sim.state.set_faults(http_5xx=1.0, endpoints=["token"])
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.fetch_token(tenant)
    assert not isinstance(caught.value, CredentialsError)


async def test_simulator_accepts_basic_auth(exmail_sim: ExmailSim) -> None:
    """The simulated token endpoint takes the credential as HTTP Basic auth too."""
    basic = base64.b64encode(f"{ACME}:s3cret".encode()).decode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{exmail_sim.url}/cgi-bin/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ) as resp,
    ):
        body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200


async def test_rate_limiter_gates_every_request(
    exmail_sim: ExmailSim, session: aiohttp.ClientSession, tenant: TenantConfig
) -> None:
    """With a RateLimiter, each upstream request (token included) acquires it first."""
    limiter = RateLimiter(rate_per_s=1000)
    client = ExmailClient(session=session, settings=exmail_sim.exmail_settings(), rate=limiter)
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 1)
    with patch.object(limiter, "acquire", wraps=limiter.acquire) as acquire:
        await client.newcount(tenant, "bob@acme.com")
        await collect(client, tenant)
    assert acquire.await_count == 3  # token, newcount, listen
