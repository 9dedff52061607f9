"""WeCom in a real run: a textcard whose link logs into Exmail; no secret reaches the log."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.plugins.e2e import CLIENT_ID, Harness
from tests.plugins.wecom import WecomSim


def _wecom_sink(wecom_sim: WecomSim) -> dict[str, Any]:
    return wecom_sim.sink_table(users={"bob@acme.com": "bob"}, retry_s=[0, 0.3, 0.3], timeout_s=2)


async def test_card_click_through_logs_in(e2e: Harness, wecom_sim: WecomSim) -> None:
    """A mail to a mapped member becomes a textcard whose link 302s to the Exmail SSO login."""
    wecom_sim.state.corp_secret = f"e2e-corp-secret-{secrets.token_hex(8)}"
    wecom_sim.state.add_member("bob", email="bob@acme.com")
    wecom_sim.state.current_user = "bob"  # signed in to WeCom: OAuth is on by default
    wecom_tokens = _record_tokens(wecom_sim)
    sinks = [e2e.webhook_sink(), _wecom_sink(wecom_sim)]
    await e2e.start_bridge(e2e.write_config(sinks=sinks, bridge={"log_level": "debug"}))
    await e2e.until(lambda: bool(e2e.sim.state.tokens), "the first Exmail token")
    revoked = list(e2e.sim.state.tokens)
    e2e.sim.state.revoke_tokens(CLIENT_ID)  # the bridge re-fetches: a token path that logs
    wecom_sim.state.inject(42001, endpoint="message/send")  # and WeCom's token expires once
    event_id = e2e.mail("bob@acme.com", "请审批：采购单 #88", summary="金额 ¥12,000")
    await e2e.until(lambda: len(wecom_sim.state.messages("bob")) == 1, "the WeCom card")
    await e2e.until(lambda: event_id in e2e.receiver.delivered_ids(), "the webhook")
    card = wecom_sim.state.messages("bob")[0]
    assert card.msgtype == "textcard"
    assert "请审批：采购单 #88" in str(card.body["title"]) + str(card.body["description"])
    link = str(card.body["url"])
    assert link.startswith(f"{e2e.public_url}/open/")
    location, hops = link, 0
    while not location.startswith(f"{e2e.sim.url}/cgi-bin/login?") and hops < 4:
        async with e2e.http.get(location, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location, hops = resp.headers["Location"], hops + 1
    assert hops == 3  # the link, WeCom's OAuth, the link again with the member's code
    assert location.startswith(f"{e2e.sim.url}/cgi-bin/login?")
    async with e2e.http.get(location, allow_redirects=False) as page:
        assert page.status == 200
        assert "logged in as bob@acme.com" in await page.text()
    ticket = parse_qs(urlsplit(location).query)["ticket"][0]
    assert len(wecom_tokens) == 2
    _assert_no_secret_logged(e2e, wecom_sim, [ticket, *revoked, *wecom_tokens])


def _record_tokens(wecom_sim: WecomSim) -> list[str]:
    """Keep every token the WeCom simulator issues (a revoked one leaves its state)."""
    issued: list[str] = []
    issue = wecom_sim.state.issue_token

    def recording() -> str:
        issued.append(issue())
        return issued[-1]

    wecom_sim.state.issue_token = recording  # type: ignore[method-assign]
    return issued


def _assert_no_secret_logged(e2e: Harness, wecom_sim: WecomSim, extra: list[str]) -> None:
    logged = e2e.logs()
    for event in ("click_login", "exmail_token_invalidated"):
        assert f'"event":"{event}"' in logged  # the paths near secrets did log
    found = {
        "client_secret": e2e.client_secret,
        "webhook secret": e2e.webhook_secret,
        "webhook key": e2e.webhook_secret.removeprefix("whsec_"),
        "corp_secret": wecom_sim.state.corp_secret,
        **{f"ticket or token {i}": t for i, t in enumerate(extra)},
        **{f"exmail token {i}": t for i, t in enumerate(e2e.sim.state.tokens)},
    }
    leaked = [name for name, value in found.items() if value in logged]
    assert leaked == []
