"""Click-through as a login: OAuth on by default, against the corp that sent the card;
links without OAuth live one day; the button opens the mail it names."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from aiohttp import web

from bridge.click_token import ClickSigner, _b64, link_ttl_s, make_signer
from bridge.clickthrough import ClickThrough, member_checks
from bridge.config import Config, WecomSinkConfig
from bridge.exmail.client import ExmailClient
from bridge.simulator.exmail import make_exmail_app
from bridge.simulator.wecom import make_wecom_app
from bridge.simulator.wecom_state import WecomState
from bridge.store.sqlite import SqliteStore
from sinks.wecom import WecomSink
from tests.plugins.services import free_port
from tests.plugins.wecom import WecomSim, serve_app
from tests.wecom.helpers import mail

TENANT = {"name": "acme", "client_id": "admin@acme.com", "client_secret": "k"}


@dataclass
class Bridge:
    """The click-through wired as bridge/app.py wires it, with its sinks and a browser."""

    clicks: ClickThrough
    sinks: dict[str, WecomSink]
    browser: aiohttp.ClientSession

    async def card_link(self, sink: str, userid: str, state: WecomState) -> str:
        """Send a mail through `sink`; the link on the card `userid` got."""
        await self.sinks[sink].send(mail("bob@acme.com", "m1"))
        return str(state.messages(userid)[-1].body["url"])

    async def click(self, link: str) -> tuple[int, str, str]:
        """Follow every redirect; the final status, URL and page."""
        async with self.browser.get(link) as resp:
            return resp.status, str(resp.url), await resp.text()


def _sink_table(
    name: str, sim: WecomSim | tuple[WecomState, str], **extra: object
) -> dict[str, object]:
    state, url = (sim.state, sim.url) if isinstance(sim, WecomSim) else sim
    return {
        "name": name,
        "type": "wecom",
        "corp_id": state.corp_id,
        "corp_secret": state.corp_secret,
        "agent_id": state.agent_id,
        "api_base": url,
        "oauth_url": f"{url}/connect/oauth2/authorize",
        "users": {"bob@acme.com": "bob"},
        **extra,
    }


@asynccontextmanager
async def bridge(tmp_path: Path, sinks: list[dict[str, object]]) -> AsyncIterator[Bridge]:
    """Signer, then sinks given links naming them, then ClickThrough given the WeCom sinks."""
    port = free_port()
    async with AsyncExitStack() as stack:
        exmail = await stack.enter_async_context(serve_app(make_exmail_app()))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        store = await stack.enter_async_context(
            SqliteStore(path=tmp_path / "b.db", dedupe_window_s=60)
        )
        config = Config.model_validate(
            {
                "bridge": {"public_url": f"http://127.0.0.1:{port}"},
                "exmail": {"token_url": f"{exmail}/cgi-bin/token", "api_base": exmail},
                "tenants": [TENANT],
                "sinks": sinks,
            }
        )
        signer = await make_signer(config, store)
        built: dict[str, WecomSink] = {}
        for sink_config in config.sinks:
            assert isinstance(sink_config, WecomSinkConfig)
            link_for = signer.links_for(
                sink_config.name, ttl_s=link_ttl_s(config.bridge, sink_config)
            )
            built[sink_config.name] = WecomSink(config=sink_config, link_for=link_for)
            await built[sink_config.name].start()
            stack.push_async_callback(built[sink_config.name].aclose)
        clicks = ClickThrough(
            signer=signer,
            tenants=config.tenants,
            authkeys=ExmailClient(session=http, settings=config.exmail),
            checks=member_checks(built.values()),
            without_oauth_ttl_s=config.bridge.click_ttl_without_oauth_s,
        )
        app = web.Application()
        app.router.add_routes(clicks.routes())
        await stack.enter_async_context(serve_app(app, port))
        yield Bridge(clicks=clicks, sinks=built, browser=http)


def test_oauth_is_on_by_default() -> None:
    """A wecom sink that does not mention `oauth` checks who clicks."""
    config = WecomSinkConfig.model_validate(
        {"name": "c", "type": "wecom", "corp_id": "ww1", "corp_secret": "s", "agent_id": 1}
    )
    assert config.oauth is True
    assert config.model_copy(update={"oauth": False}).oauth is False


async def test_default_card_link_goes_through_oauth(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A card from a default WeCom sink sends the browser to WeCom OAuth first."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    async with bridge(tmp_path, [_sink_table("chat", wecom_sim)]) as b:
        link = await b.card_link("chat", "bob", wecom_sim.state)
        async with b.browser.get(link, allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["location"].startswith(f"{wecom_sim.url}/connect/oauth2/authorize?")


async def test_member_of_the_second_corp_gets_in(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """With two WeCom corps, a card sent by the second is checked against the second corp."""
    other = WecomState(corp_id="wwsecond", corp_secret="second-secret")
    other.add_member("bob", "bob@acme.com")
    other.current_user = "bob"
    wecom_sim.state.add_member("bob", "bob@acme.com")
    async with serve_app(make_wecom_app(other)) as other_url:
        tables = [_sink_table("first", wecom_sim), _sink_table("second", (other, other_url))]
        async with bridge(tmp_path, tables) as b:
            link = await b.card_link("second", "bob", other)
            status, _, page = await b.click(link)
    assert status == 200, page
    assert "logged in as bob@acme.com" in page
    assert other.count("oauth2/authorize") == 1
    assert wecom_sim.state.count("oauth2/authorize") == 0


async def test_link_without_oauth_lives_one_day(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A link from a sink with oauth = false opens at once, and is refused after a day."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    async with bridge(tmp_path, [_sink_table("chat", wecom_sim, oauth=False)]) as b:
        link = await b.card_link("chat", "bob", wecom_sim.state)
        status, _, page = await b.click(link)
        assert status == 200
        assert "logged in as bob@acme.com" in page
        claim = b.clicks.signer.verify(link.rsplit("/", 1)[1])
        assert claim.expires_at - claim.issued_at == 86400
        old = b.clicks.signer.sign(
            "acme", "bob@acme.com", "m1", sink="chat", ttl_s=7 * 86400, now=time.time() - 2 * 86400
        )
        status, _, page = await b.click(b.clicks.signer.url_for(old))
    assert status == 403
    assert "expired" in page


async def test_button_opens_the_mail_it_names(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """The Exmail login the link leads to carries the mail's id (mailid)."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    wecom_sim.state.current_user = "bob"
    async with bridge(tmp_path, [_sink_table("chat", wecom_sim)]) as b:
        status, url, page = await b.click(await b.card_link("chat", "bob", wecom_sim.state))
    assert status == 200
    assert parse_qs(urlsplit(url).query)["mailid"] == ["m1"]
    assert "opened mail m1" in page


async def test_link_signed_before_sinks_were_named_still_works(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """A four-field token (issued before this change) verifies and goes through OAuth."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    wecom_sim.state.current_user = "bob"
    async with bridge(tmp_path, [_sink_table("chat", wecom_sim)]) as b:
        signer: ClickSigner = b.clicks.signer
        payload = _b64(orjson.dumps(["acme", "bob@acme.com", "m1", int(time.time()) + 600]))
        token = f"{payload}.{signer._mac(payload)}"
        status, _, page = await b.click(signer.url_for(token))
    assert status == 200, page
    assert wecom_sim.state.count("oauth2/authorize") == 1
