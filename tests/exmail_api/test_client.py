"""The new API's client against the simulator: tokens per app, refresh, back-off, SSO URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bridge.config import TenantConfig
from bridge.errors import CredentialsError, RateLimited, UpstreamRejected, UpstreamUnavailable
from bridge.exmail_api.client import ApiClient
from tests.plugins.sim import ExmailSim

CORP = "wwclienttest0001"


def tenant(**extra: Any) -> TenantConfig:
    """An api tenant (poll mode) with a mail secret and, optionally, an SSO secret."""
    fields = {"name": "globex", "protocol": "api", "corp_id": CORP, "corp_secret": "mail-s"}
    return TenantConfig.model_validate({**fields, **extra})


async def control(sim: ExmailSim, op: str, body: dict[str, Any]) -> dict[str, Any]:
    """Call the simulator's new-API control API."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.url}/_sim/api/{op}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def stats(sim: ExmailSim) -> dict[str, Any]:
    """The simulator's counters for the test corp."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.url}/_sim/api/stats", params={"tenant": CORP}) as resp,
    ):
        result: dict[str, Any] = await resp.json()
        return result


@pytest.fixture
async def client(exmail_sim: ExmailSim) -> AsyncIterator[ApiClient]:
    """An ApiClient aimed at the simulator's new API."""
    await control(
        exmail_sim, "corps", {"corp_id": CORP, "secrets": {"mail": "mail-s", "sso": "sso-s"}}
    )
    settings = exmail_sim.exmail_settings(api_url=exmail_sim.url)
    async with aiohttp.ClientSession() as session:
        yield ApiClient(session=session, settings=settings, base_url=settings.api_url)


async def test_one_token_for_many_concurrent_calls(
    exmail_sim: ExmailSim, client: ApiClient
) -> None:
    """Twenty concurrent callers share one gettoken."""
    tokens = await asyncio.gather(*(client.token(tenant()) for _ in range(20)))
    assert len(set(tokens)) == 1
    assert (await stats(exmail_sim))["token_requests"] == 1


async def test_each_app_has_its_own_token(exmail_sim: ExmailSim, client: ApiClient) -> None:
    """The SSO app's secret gets its own token; without sso_secret the mail token serves."""
    with_sso = tenant(sso_secret="sso-s")
    assert await client.token(with_sso, "mail") != await client.token(with_sso, "sso")
    assert (await stats(exmail_sim))["token_requests"] == 2
    plain = tenant(name="plain")
    assert await client.token(plain, "mail") == await client.token(plain, "sso")


async def test_revoked_token_is_refreshed_once(exmail_sim: ExmailSim, client: ApiClient) -> None:
    """A call answered 40014 fetches one new token and succeeds on the retry."""
    t = tenant()
    await client.token(t)
    await control(exmail_sim, "revoke", {"tenant": CORP})
    doc = await client.call(t, "GET", "service/get_login_url", params={"userid": "a@globex.com"})
    assert doc["login_url"]
    assert (await stats(exmail_sim))["token_requests"] == 2


@pytest.mark.parametrize("errcode", [40001, 42001])
async def test_other_token_errcodes_refresh_too(
    exmail_sim: ExmailSim, client: ApiClient, errcode: int
) -> None:
    """40001 and 42001 on a call also cost exactly one token refresh."""
    t = tenant()
    await client.token(t)
    await control(exmail_sim, "faults", {"errcodes": {"service/get_login_url": [errcode]}})
    await client.call(t, "GET", "service/get_login_url", params={"userid": "a@globex.com"})
    assert (await stats(exmail_sim))["token_requests"] == 2


async def test_bad_secret_is_a_credentials_error(client: ApiClient) -> None:
    """gettoken refusing the secret (40001) is a CredentialsError naming no secret."""
    with pytest.raises(CredentialsError) as info:
        await client.token(tenant(corp_secret="wrong-secret"))
    assert info.value.code == "40001"
    assert "wrong-secret" not in str(info.value)


@pytest.mark.parametrize(("errcode", "kind"), [(45009, RateLimited), (-1, UpstreamUnavailable)])
async def test_busy_gettoken_backs_off(
    exmail_sim: ExmailSim, client: ApiClient, errcode: int, kind: type[Exception]
) -> None:
    """-1/45009 on gettoken raise with retry_after_s, and callers wait instead of refetching."""
    await control(exmail_sim, "faults", {"errcodes": {"gettoken": [errcode]}})
    for _ in range(3):
        with pytest.raises(kind) as info:
            await client.token(tenant())
    assert getattr(info.value, "retry_after_s", 0) > 0
    assert (await stats(exmail_sim))["token_requests"] == 1


async def test_rate_limited_call_is_not_retried(exmail_sim: ExmailSim, client: ApiClient) -> None:
    """45033 on a call raises RateLimited for the caller to back off; the token is kept."""
    t = tenant()
    await client.token(t)
    await control(exmail_sim, "faults", {"errcodes": {"service/get_login_url": [45033]}})
    with pytest.raises(RateLimited):
        await client.call(t, "GET", "service/get_login_url", params={"userid": "a@globex.com"})
    assert (await stats(exmail_sim))["token_requests"] == 1


async def test_unknown_user_is_rejected(client: ApiClient) -> None:
    """60111 (no such user) is UpstreamRejected: retrying would not help."""
    with pytest.raises(UpstreamRejected):
        await client.call(tenant(), "GET", "service/get_login_url", params={"userid": "nobody"})


async def test_token_refreshed_before_expiry(exmail_sim: ExmailSim, client: ApiClient) -> None:
    """A token that lives 2 s is refreshed after about half its life, not after expiry."""
    await control(exmail_sim, "faults", {"settings": {"token_expires_in_s": 2}})
    first = await client.token(tenant())
    await asyncio.sleep(1.1)
    assert await client.token(tenant()) != first


async def test_login_url_is_single_use(exmail_sim: ExmailSim, client: ApiClient) -> None:
    """The simulator's login URL logs in once (with the SSO app's token), then is refused."""
    t = tenant(sso_secret=SecretStr("sso-s").get_secret_value())
    doc = await client.call(
        t, "GET", "service/get_login_url", app="sso", params={"userid": "boss@globex.com"}
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(doc["login_url"]) as first:
            assert first.status == 200
            assert "boss@globex.com" in await first.text()
        async with http.get(doc["login_url"]) as second:
            assert second.status == 403
    assert (await stats(exmail_sim))["login_url_requests"] == [
        {"user": "boss@globex.com", "app": "sso"}
    ]
