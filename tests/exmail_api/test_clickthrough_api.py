"""Click-through for the new protocols: api tenants log in through get_login_url,
wecom-mail tenants get no button, and their WeCom messages say why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from structlog.testing import capture_logs

from bridge.clickthrough import ClickSigner, ClickThrough
from bridge.clickthrough_logins import only_with_sso
from bridge.config import TenantConfig
from bridge.events import Event, mail_received, unread_changed
from bridge.exmail.client import ExmailClient
from bridge.exmail_api.client import ApiClient
from bridge.exmail_api.sso import ApiLogin
from bridge.simulator.exmail import make_exmail_app
from sinks.wecom import WecomSink
from tests.plugins.services import free_port
from tests.plugins.sim import ExmailSim
from tests.plugins.wecom import WecomSim, serve_app

KEY = b"click-key-for-tests-0123456789ab"
CORP = "wwclickthrough01"
API = TenantConfig.model_validate(
    {
        "name": "globex",
        "protocol": "api",
        "corp_id": CORP,
        "corp_secret": "mail-s",
        "sso_secret": "sso-s",
    }
)
API_NO_SSO = API.model_copy(update={"name": "initech", "sso_secret": None})
WECOM_MAIL = TenantConfig.model_validate(
    {"name": "hooli", "protocol": "wecom-mail", "corp_id": "wwhooli", "corp_secret": "s"}
)
TENANTS = [API, API_NO_SSO, WECOM_MAIL]


@dataclass
class Env:
    """The /open/ endpoint of a bridge-like app, a browser, and the simulator's URL."""

    clicks: ClickThrough
    browser: aiohttp.ClientSession
    sim_url: str

    def link_for(self, event: Event) -> str | None:
        """The link a sink's card would carry (None: no click-through for the tenant)."""
        links = self.clicks.signer.links_for("chat", ttl_s=600)
        return only_with_sso(links, TENANTS)(event)

    async def click(self, link: str) -> tuple[int, str, str]:
        """Follow `link` through every redirect: final status, URL and page."""
        async with self.browser.get(link) as resp:
            return resp.status, str(resp.url), await resp.text()

    async def stats(self) -> dict[str, Any]:
        """The simulator's new-API counters for the corp."""
        async with self.browser.get(f"{self.sim_url}/_sim/api/stats?tenant={CORP}") as resp:
            result: dict[str, Any] = await resp.json()
            return result


@asynccontextmanager
async def env(exmail_sim: ExmailSim) -> AsyncIterator[Env]:
    """ClickThrough wired as the app wires it, serving /open/ on a free port."""
    async with aiohttp.ClientSession() as http:
        await http.post(
            f"{exmail_sim.url}/_sim/api/corps",
            json={"corp_id": CORP, "secrets": {"mail": "mail-s", "sso": "sso-s"}},
        )
        settings = exmail_sim.exmail_settings(api_url=exmail_sim.url)
        api = ApiClient(session=http, settings=settings, base_url=settings.api_url)
        port = free_port()
        signer = ClickSigner(key=KEY, public_url=f"http://127.0.0.1:{port}", ttl_s=600)
        clicks = ClickThrough(
            signer=signer,
            tenants=TENANTS,
            authkeys=ExmailClient(session=http, settings=settings),
            logins={"api": ApiLogin(api)},
        )
        app = web.Application()
        app.router.add_routes(clicks.routes())
        async with serve_app(app, port):
            yield Env(clicks=clicks, browser=http, sim_url=exmail_sim.url)


def _mail(tenant: str, mailbox: str = "boss@globex.com") -> Any:
    return mail_received(
        tenant=tenant,
        mailbox=mailbox,
        mail_id="m1",
        sender="a@b.cn",
        to=mailbox,
        subject="hi",
        summary="",
        unread_count=1,
    )


async def test_api_click_logs_in_through_get_login_url(exmail_sim: ExmailSim) -> None:
    """An api tenant's link redirects to a fresh login URL got with the SSO app's token."""
    async with env(exmail_sim) as e:
        link = e.link_for(_mail("globex"))
        assert link is not None
        with capture_logs() as logs:
            status, url, page = await e.click(link)
        assert (status, "logged in as boss@globex.com" in page) == (200, True)
        stats = await e.stats()
    assert stats["login_url_requests"] == [{"user": "boss@globex.com", "app": "sso"}]
    assert stats["logins"] == ["boss@globex.com"]
    ticket = url.split("ticket=")[1]
    assert ticket not in repr(logs)
    assert any(entry["event"] == "click_login" for entry in logs)


async def test_each_click_fetches_a_new_url(exmail_sim: ExmailSim) -> None:
    """Two clicks on one link make two get_login_url calls: the URL is never cached."""
    async with env(exmail_sim) as e:
        link = e.link_for(_mail("globex"))
        assert link is not None
        first, second = await e.click(link), await e.click(link)
        assert first[0] == second[0] == 200
        assert first[1] != second[1]
        assert len((await e.stats())["login_url_requests"]) == 2


async def test_without_sso_secret_the_mail_app_token_is_used(exmail_sim: ExmailSim) -> None:
    """No sso_secret: get_login_url is called with the corp_secret app's token."""
    async with env(exmail_sim) as e:
        link = e.link_for(_mail("initech"))
        assert link is not None
        assert (await e.click(link))[0] == 200
        assert (await e.stats())["login_url_requests"] == [
            {"user": "boss@globex.com", "app": "mail"}
        ]


async def test_get_login_url_failure_is_a_503_page(exmail_sim: ExmailSim) -> None:
    """Exmail busy (-1) on get_login_url: a 503 page, never a login or a crash."""
    async with env(exmail_sim) as e:
        faults = {"errcodes": {"service/get_login_url": [-1]}}
        await e.browser.post(f"{e.sim_url}/_sim/api/faults", json=faults)
        link = e.link_for(_mail("globex"))
        assert link is not None
        status, _, page = await e.click(link)
    assert status == 503
    assert "try again later" in page


async def test_wecom_mail_has_no_link_and_its_token_is_refused(exmail_sim: ExmailSim) -> None:
    """A wecom-mail tenant gets no link; a hand-made token for it gets the no_sso page."""
    async with env(exmail_sim) as e:
        assert e.link_for(_mail("hooli", "a@hooli.com")) is None
        token = e.clicks.signer.sign("hooli", "a@hooli.com", "m1")
        status, _, page = await e.click(e.clicks.signer.url_for(token))
    assert status == 403
    assert "no one-click sign-in" in page


async def test_wecom_message_without_click_through_says_why(wecom_sim: WecomSim) -> None:
    """No link for the tenant: a rise of the unread count is a text message saying why."""
    wecom_sim.state.add_member("bob")
    sink = WecomSink(
        config=wecom_sim.sink_config(users={"a@hooli.com": "bob"}), link_for=lambda _: None
    )
    rise = unread_changed(
        tenant="hooli", mailbox="a@hooli.com", unread_count=4, previous=2, reason="poll"
    )
    fall = unread_changed(
        tenant="hooli", mailbox="a@hooli.com", unread_count=1, previous=4, reason="poll"
    )
    await sink.start()
    try:
        assert await sink.send_batch([rise]) == [None]
        assert await sink.send_batch([fall]) == [None]
    finally:
        await sink.aclose()
    [message] = wecom_sim.state.messages("bob")
    assert message.msgtype == "text"
    assert "4 封未读邮件" in message.body["content"]
    assert "no one-click sign-in" in message.body["content"]


async def test_legacy_sim_app_still_serves_both_apis() -> None:
    """The simulator app serves the legacy token endpoint and the new API on one port."""
    async with serve_app(make_exmail_app()) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/cgi-bin/gettoken?corpid=ww1&corpsecret=s") as resp:
            assert (await resp.json())["errcode"] == 0
        form = {"grant_type": "client_credentials", "client_id": "a@b.c", "client_secret": "k"}
        async with http.post(f"{url}/cgi-bin/token", data=form) as resp:
            assert "access_token" in await resp.json()
