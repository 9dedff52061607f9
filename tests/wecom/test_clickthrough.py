"""Click-through end to end: card link -> /open/<token> -> (WeCom OAuth) -> Exmail SSO login.

Three real local servers: the WeCom simulator, the Exmail simulator, and a bridge-like
aiohttp app with only the `/open/{token}` handler mounted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bridge.clickthrough import ClickSigner, make_open_handler
from bridge.config import ExmailSection, TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.simulator.exmail import make_exmail_app
from sinks.wecom import WecomSink
from tests.plugins.services import free_port
from tests.plugins.wecom import WecomSim, serve_app
from tests.wecom.helpers import mail

TENANT = TenantConfig.model_validate(
    {"name": "acme", "client_id": "admin@acme.com", "client_secret": "exmail-key"}
)
KEY = b"click-key-for-tests-0123456789ab"


@dataclass
class Clicker:
    """The bridge's click-through endpoint, and a browser to click with."""

    signer: ClickSigner
    browser: aiohttp.ClientSession
    exmail_url: str

    async def click(self, link: str) -> tuple[int, str, str]:
        """Follow redirects from `link`; the final status, URL and page text."""
        async with self.browser.get(link) as resp:
            return resp.status, str(resp.url), await resp.text()


Env = Callable[..., AbstractAsyncContextManager[Clicker]]


@pytest.fixture
def click_env(wecom_sim: WecomSim) -> Env:
    """A factory: `async with click_env(oauth=...) as clicker`."""

    @asynccontextmanager
    async def env(oauth: bool = False, **wecom: Any) -> AsyncIterator[Clicker]:
        async with serve_app(make_exmail_app()) as exmail_url, aiohttp.ClientSession() as http:
            settings = ExmailSection(token_url=f"{exmail_url}/cgi-bin/token", api_base=exmail_url)
            port = free_port()
            signer = ClickSigner(key=KEY, public_url=f"http://127.0.0.1:{port}", ttl_s=600)
            sink = WecomSink(
                config=wecom_sim.sink_config(oauth=oauth, **wecom), link_for=signer.link_for
            )
            await sink.start()
            handler = make_open_handler(
                signer=signer,
                tenants=[TENANT],
                authkeys=ExmailClient(session=http, settings=settings),
                wecom=sink,
            )
            app = web.Application()
            app.router.add_get("/open/{token}", handler)
            try:
                async with serve_app(app, port):
                    yield Clicker(signer=signer, browser=http, exmail_url=exmail_url)
            finally:
                await sink.aclose()

    return env


async def test_card_link_logs_into_exmail(wecom_sim: WecomSim, click_env: Env) -> None:
    """The card's button link redirects to Exmail's SSO login, which accepts the ticket."""
    wecom_sim.state.add_member("bob")
    async with click_env() as clicker:
        sink = WecomSink(
            config=wecom_sim.sink_config(users={"bob@acme.com": "bob"}),
            link_for=clicker.signer.link_for,
        )
        await sink.start()
        await sink.send(mail("bob@acme.com", "m1"))
        await sink.aclose()
        [card] = wecom_sim.state.messages("bob")
        with capture_logs() as logs:
            status, url, page = await clicker.click(card.body["url"])
    assert status == 200
    assert url.startswith(f"{clicker.exmail_url}/cgi-bin/login?")
    assert "logged in as bob@acme.com" in page
    ticket = parse_qs(urlsplit(url).query)["ticket"][0]
    assert all(ticket not in str(entry) for entry in logs)


async def test_login_ticket_is_fresh_per_click(click_env: Env) -> None:
    """Each click fetches a new one-time auth key; a link can be clicked twice."""
    async with click_env() as clicker:
        link = clicker.signer.link_for(mail("bob@acme.com", "m1"))
        first, second = await clicker.click(link), await clicker.click(link)
    assert first[0] == second[0] == 200
    assert first[1] != second[1]


async def test_oauth_owner_gets_in(wecom_sim: WecomSim, click_env: Env) -> None:
    """With oauth = true the mailbox's owner, verified through WeCom, reaches the login."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    wecom_sim.state.current_user = "bob"
    async with click_env(oauth=True) as clicker:
        status, url, page = await clicker.click(clicker.signer.link_for(mail("bob@acme.com")))
    assert status == 200
    assert url.startswith(f"{clicker.exmail_url}/cgi-bin/login?")
    assert "logged in as bob@acme.com" in page
    assert wecom_sim.state.count("oauth2/authorize") == 1
    assert wecom_sim.state.count("auth/getuserinfo") == 1


async def test_oauth_first_hop_goes_to_wecom(wecom_sim: WecomSim, click_env: Env) -> None:
    """Without a code the bridge redirects to WeCom's authorize URL, back to the same link."""
    async with click_env(oauth=True) as clicker:
        link = clicker.signer.link_for(mail("bob@acme.com"))
        async with clicker.browser.get(link, allow_redirects=False) as resp:
            location = resp.headers["location"]
            assert resp.status == 302
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{wecom_sim.url}/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    assert query["appid"] == [wecom_sim.state.corp_id]
    assert query["redirect_uri"] == [link]
    assert query["scope"] == ["snsapi_base"]
    assert query["agentid"] == [str(wecom_sim.state.agent_id)]


async def test_oauth_other_member_is_refused(wecom_sim: WecomSim, click_env: Env) -> None:
    """A member opening someone else's mail gets a 403 that says so, and no login."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    wecom_sim.state.add_member("eve", "eve@acme.com")
    wecom_sim.state.current_user = "eve"
    async with click_env(oauth=True) as clicker:
        status, url, page = await clicker.click(clicker.signer.link_for(mail("bob@acme.com")))
    assert status == 403
    assert "这封邮件不属于您的邮箱" in page
    assert "belongs to someone else" in page
    assert not url.startswith(clicker.exmail_url)


async def test_forged_token_is_refused(click_env: Env) -> None:
    """A token with a wrong signature gets a 403 naming the reason."""
    async with click_env() as clicker:
        link = clicker.signer.link_for(mail("bob@acme.com"))
        forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        status, _, page = await clicker.click(forged)
    assert status == 403
    assert "not issued by this service" in page
    assert "不是本服务签发的" in page


async def test_expired_token_is_refused(click_env: Env) -> None:
    """An expired link gets a 403 saying it expired."""
    async with click_env() as clicker:
        token = clicker.signer.sign("acme", "bob@acme.com", "m1", now=time.time() - 601)
        status, _, page = await clicker.click(clicker.signer.url_for(token))
    assert status == 403
    assert "expired" in page
    assert "链接已过期" in page


async def test_unknown_tenant_is_refused(click_env: Env) -> None:
    """A valid token for a tenant this bridge does not serve gets a 403."""
    async with click_env() as clicker:
        status, _, page = await clicker.click(
            clicker.signer.url_for(clicker.signer.sign("globex", "bob@globex.com", "m1"))
        )
    assert status == 403
    assert "does not serve" in page


async def test_exmail_down_is_a_503_not_a_login(click_env: Env) -> None:
    """When Exmail refuses the auth key the click gets a 503 page to try again."""
    async with click_env() as clicker:
        link = clicker.signer.link_for(mail("", "m1"))  # an empty alias: Exmail refuses
        status, _, page = await clicker.click(link)
    assert status == 503
    assert "try again later" in page
