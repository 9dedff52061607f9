"""The WeCom simulator behaves like WeCom where the bridge depends on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.plugins.wecom import WecomSim


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> dict[str, Any]:
    async with http.get(url, params=params) as resp:
        doc: dict[str, Any] = await resp.json()
        return doc


async def _post(http: aiohttp.ClientSession, url: str, body: Any, **params: str) -> dict[str, Any]:
    async with http.post(url, json=body, params=params) as resp:
        doc: dict[str, Any] = await resp.json()
        return doc


async def _token(sim: WecomSim, http: aiohttp.ClientSession) -> str:
    doc = await _get(
        http,
        f"{sim.url}/cgi-bin/gettoken",
        corpid=sim.state.corp_id,
        corpsecret=sim.state.corp_secret,
    )
    return str(doc["access_token"])


def _card(touser: str, title: str = "t", **fields: str) -> dict[str, Any]:
    card = {"title": title, "description": "d", "url": "http://x", "btntxt": "打开", **fields}
    return {"touser": touser, "msgtype": "textcard", "agentid": 1000002, "textcard": card}


async def test_gettoken_checks_the_secret(wecom_sim: WecomSim, http: aiohttp.ClientSession) -> None:
    """A wrong corpsecret gets 40001 and no token."""
    doc = await _get(http, f"{wecom_sim.url}/cgi-bin/gettoken", corpid="wwsimcorp", corpsecret="x")
    assert doc["errcode"] == 40001
    assert "access_token" not in doc
    assert wecom_sim.state.count("gettoken") == 1


async def test_card_over_the_byte_limit_is_rejected(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """A title over 128 bytes (43 Chinese characters) is refused with 45002."""
    wecom_sim.state.add_member("bob")
    token = await _token(wecom_sim, http)
    url = f"{wecom_sim.url}/cgi-bin/message/send"
    doc = await _post(http, url, _card("bob", title="中" * 43), access_token=token)
    assert doc["errcode"] == 45002
    doc = await _post(http, url, _card("bob", title="中" * 42), access_token=token)
    assert doc["errcode"] == 0


async def test_partial_and_total_invalid_recipients(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """Unknown members are listed in invaliduser; when none is valid the answer is 81013."""
    wecom_sim.state.add_member("bob")
    token = await _token(wecom_sim, http)
    url = f"{wecom_sim.url}/cgi-bin/message/send"
    doc = await _post(http, url, _card("bob|Ghost"), access_token=token)
    assert (doc["errcode"], doc["invaliduser"]) == (0, "ghost")
    doc = await _post(http, url, _card("ghost"), access_token=token)
    assert doc["errcode"] == 81013
    assert len(wecom_sim.state.messages("bob")) == 1


async def test_thirty_first_message_is_dropped_silently(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """Past 30 a minute a member's message is answered errcode 0 but dropped."""
    wecom_sim.state.add_member("bob")
    token = await _token(wecom_sim, http)
    url = f"{wecom_sim.url}/cgi-bin/message/send"
    codes = [
        (await _post(http, url, _card("bob", f"n{i}"), access_token=token))["errcode"]
        for i in range(31)
    ]
    assert codes == [0] * 31
    assert len(wecom_sim.state.messages("bob")) == 30
    assert [m.body["title"] for m in wecom_sim.state.dropped_messages("bob")] == ["n30"]
    wecom_sim.clock.advance(60.0)
    await _post(http, url, _card("bob", "later"), access_token=token)
    assert wecom_sim.state.messages("bob")[-1].body["title"] == "later"


async def test_injected_revocation_invalidates_the_token(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """An injected 42001 answers once and leaves the old token invalid (40014) after."""
    wecom_sim.state.add_member("bob")
    token = await _token(wecom_sim, http)
    url = f"{wecom_sim.url}/cgi-bin/message/send"
    await _post(http, f"{wecom_sim.url}/_sim/faults", {"code": 42001})
    assert (await _post(http, url, _card("bob"), access_token=token))["errcode"] == 42001
    assert (await _post(http, url, _card("bob"), access_token=token))["errcode"] == 40014
    fresh = await _token(wecom_sim, http)
    assert (await _post(http, url, _card("bob"), access_token=fresh))["errcode"] == 0


async def test_email_lookup_and_control_api(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """Members added over /_sim/ are found by email; unknown emails get 46004."""
    await _post(http, f"{wecom_sim.url}/_sim/members", {"userid": "bob", "email": "Bob@acme.com"})
    token = await _token(wecom_sim, http)
    url = f"{wecom_sim.url}/cgi-bin/user/get_userid_by_email"
    doc = await _post(http, url, {"email": "bob@acme.com", "email_type": 1}, access_token=token)
    assert doc["userid"] == "bob"
    doc = await _post(http, url, {"email": "no@acme.com", "email_type": 1}, access_token=token)
    assert doc["errcode"] == 46004
    stats = await _get(http, f"{wecom_sim.url}/_sim/stats")
    assert stats["calls"]["user/get_userid_by_email"] == 2


async def test_oauth_code_names_the_signed_in_member_once(
    wecom_sim: WecomSim, http: aiohttp.ClientSession
) -> None:
    """authorize redirects back with a code; getuserinfo maps it to the member once."""
    wecom_sim.state.add_member("bob")
    await _post(http, f"{wecom_sim.url}/_sim/current_user", {"userid": "bob"})
    params = {
        "appid": "wwsimcorp",
        "redirect_uri": "http://app.test/back?x=1",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "s1",
        "agentid": "1000002",
    }
    auth_url = f"{wecom_sim.url}/connect/oauth2/authorize"
    async with http.get(auth_url, params=params, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["location"]
    assert location.startswith("http://app.test/back?x=1&code=")
    assert location.endswith("&state=s1")
    code = location.split("code=")[1].split("&")[0]
    token = await _token(wecom_sim, http)
    info_url = f"{wecom_sim.url}/cgi-bin/auth/getuserinfo"
    assert (await _get(http, info_url, access_token=token, code=code))["userid"] == "bob"
    assert (await _get(http, info_url, access_token=token, code=code))["errcode"] == 40029
