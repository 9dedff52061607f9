"""The read calls and single sign-on, against the simulator."""

from __future__ import annotations

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.shapes import DirectoryDelta, UserInfo
from tests.exmail.helpers import ACME
from tests.plugins.sim import ExmailSim


async def test_user_list_everyone_then_delta(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Ver=0 lists everyone as added; an old Ver lists what changed since, by action."""
    state = exmail_sim.state
    state.add_user(ACME, "a@acme.com")
    state.add_user(ACME, "b@acme.com")
    v1 = state.add_user(ACME, "c@acme.com")
    everyone = await client.user_list(tenant, "0")
    assert everyone == DirectoryDelta(
        ver=v1, added=("a@acme.com", "b@acme.com", "c@acme.com"), removed=(), modified=()
    )
    state.remove_user(ACME, "a@acme.com")
    state.modify_user(ACME, "b@acme.com", Position="CTO")
    v2 = state.add_user(ACME, "d@acme.com")
    assert await client.user_list(tenant, v1) == DirectoryDelta(
        ver=v2, added=("d@acme.com",), removed=("a@acme.com",), modified=("b@acme.com",)
    )


async def test_user_list_version_as_string(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """user/list's Ver is read whether it is a JSON number or a string."""
    ver = exmail_sim.state.add_user(ACME, "a@acme.com")
    exmail_sim.state.set_faults(string_numbers=True, trailing_commas=True)
    assert (await client.user_list(tenant, "0")).ver == ver


@pytest.mark.parametrize("string_numbers", [True, False])
async def test_newcount(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, string_numbers: bool
) -> None:
    """newcount() is an int whether NewCount comes as a number or a string."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 15)
    exmail_sim.state.set_faults(string_numbers=string_numbers)
    assert await client.newcount(tenant, "bob@acme.com") == 15


async def test_user_get(exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig) -> None:
    """user_get() returns the typed directory entry."""
    exmail_sim.state.add_user(
        ACME,
        "bob@acme.com",
        Name="Bob",
        Gender=1,
        SlaveList=["b@acme.com", "robert@acme.com"],
        PartyList=["R&D/Core"],
        Mobile="138",
        OpenType=2,
    )
    assert await client.user_get(tenant, "bob@acme.com") == UserInfo(
        alias="bob@acme.com",
        name="Bob",
        gender=1,
        slaves=("b@acme.com", "robert@acme.com"),
        position="",
        tel="",
        mobile="138",
        ext_id="",
        parties=("R&D/Core",),
        enabled=False,
    )


@pytest.mark.parametrize("field", ["auth_key", "authkey", "AuthKey"])
async def test_sso_url_logs_in_once(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, field: str
) -> None:
    """An auth key under any spelling builds an SSO URL the login page accepts exactly once."""
    exmail_sim.state.configure(authkey_field=field)
    key = await client.authkey(tenant, "bob@acme.com")
    url = client.sso_url(tenant, "bob@acme.com", key)
    assert url.startswith(f"{exmail_sim.url}/cgi-bin/login?fun=bizopenssologin&method=bizauth&")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as first:
            assert first.status == 200
            assert "logged in as bob@acme.com" in await first.text()
        async with http.get(url) as second:
            assert second.status == 403


async def test_sso_url_for_another_user_is_refused(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A key issued for one mailbox does not log in another."""
    key = await client.authkey(tenant, "bob@acme.com")
    url = client.sso_url(tenant, "eve@acme.com", key)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 403


async def test_login_url_setting_is_used(
    exmail_sim: ExmailSim, session: aiohttp.ClientSession
) -> None:
    """An explicit [exmail] login_url replaces the one derived from token_url."""
    settings = exmail_sim.exmail_settings(login_url="https://mail.example.com/sso")
    client = ExmailClient(session=session, settings=settings)
    url = client.sso_url(exmail_sim.tenant_config(), "bob@acme.com", "K")
    assert url == (
        "https://mail.example.com/sso?fun=bizopenssologin&method=bizauth"
        "&agent=admin%40acme.com&user=bob%40acme.com&ticket=K"
    )
