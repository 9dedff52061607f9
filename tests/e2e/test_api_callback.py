"""An `api` tenant end to end: Tencent-like callbacks into the real bridge process reach
the webhook, MQTT and WeCom sinks, and the card's button logs in through get_login_url."""

from __future__ import annotations

import secrets
import time
from typing import Any

from bridge import events
from bridge.exmail_api.crypto import CallbackCrypto
from tests.e2e.mqtt_watch import MqttWatch
from tests.plugins.e2e import BOTH_STORES, PATIENT_RETRY_S, Harness
from tests.plugins.services import MosquittoServer
from tests.plugins.wecom import WecomSim

CORP = "wwglobex0123456789"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


class Secrets:
    """This test's fresh secrets, to look for in the logs afterwards."""

    def __init__(self) -> None:
        self.corp = f"mail-app-{secrets.token_hex(8)}"
        self.sso = f"sso-app-{secrets.token_hex(8)}"
        self.token = f"cb-{secrets.token_hex(8)}"


def _tenant(s: Secrets) -> dict[str, Any]:
    return {
        "name": "globex",
        "protocol": "api",
        "corp_id": CORP,
        "corp_secret": s.corp,
        "sso_secret": s.sso,
        "callback_token": s.token,
        "callback_aes_key": AES_KEY,
    }


def _wecom_sink(wecom_sim: WecomSim) -> dict[str, Any]:
    return wecom_sim.sink_table(
        users={"boss@globex.com": "boss"}, retry_s=[0, 0.3, 0.3], timeout_s=2
    )


async def _sim(e2e: Harness, op: str, body: dict[str, Any]) -> dict[str, Any]:
    async with e2e.http.post(f"{e2e.sim.url}{op}", json=body) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def _url_check(e2e: Harness, s: Secrets) -> None:
    """What Tencent does when the admin saves the callback URL: GET with an echostr."""
    crypto = CallbackCrypto(token=s.token, aes_key=AES_KEY, receive_id=CORP)
    echostr, ts, nonce = crypto.encrypt(b"4711"), str(int(time.time())), "17"
    query = {"msg_signature": crypto.sign(ts, nonce, echostr), "timestamp": ts, "nonce": nonce}
    url = f"{e2e.public_url}/exmail/callback/globex"
    async with e2e.http.get(url, params={**query, "echostr": echostr}) as resp:
        assert (resp.status, await resp.text()) == (200, "4711")


@BOTH_STORES
async def test_api_mail_reaches_every_sink_and_the_button_logs_in(
    e2e: Harness, wecom_sim: WecomSim, mosquitto_server: MosquittoServer, mqtt_watch: MqttWatch
) -> None:
    """Mail (callback mode) -> webhook, MQTT, WeCom card; the card's link logs in once."""
    s = Secrets()
    wecom_sim.state.add_member("boss", email="boss@globex.com")
    wecom_sim.state.current_user = "boss"  # signed in to WeCom: OAuth is on by default
    callback = {"url": f"{e2e.public_url}/exmail/callback/globex", "token": s.token}
    await _sim(
        e2e,
        "/_sim/api/corps",
        {
            "corp_id": CORP,
            "secrets": {"mail": s.corp, "sso": s.sso},
            "callback": {**callback, "aes_key": AES_KEY},
        },
    )
    sinks = [
        e2e.webhook_sink(),
        e2e.mqtt_sink(mosquitto_server, retry_s=PATIENT_RETRY_S),
        _wecom_sink(wecom_sim),
    ]
    config = e2e.write_config(sinks=sinks, tenants=[_tenant(s)], exmail={"api_url": e2e.sim.url})
    await e2e.start_bridge(config)
    await _url_check(e2e, s)
    mail = {"tenant": CORP, "to": "boss@globex.com", "from": '"CFO"<cfo@globex.com>'}
    answer = await _sim(e2e, "/_sim/mail", {**mail, "subject": "预算批复", "wait": True})
    assert [d["status"] for d in answer["deliveries"]] == [200]
    event_id = events.event_id("globex", "mail", answer["mail_id"])
    await e2e.until(lambda: event_id in e2e.receiver.delivered_ids(), "the webhook")
    await e2e.until(lambda: event_id in mqtt_watch.ids(), "the MQTT message")
    await e2e.until(lambda: len(wecom_sim.state.messages("boss")) == 1, "the WeCom card")
    [hit] = [h for h in e2e.receiver.delivered() if h.webhook_id == event_id]
    assert (hit.event["source"], hit.event["data"]["subject"]) == ("exmail://globex", "预算批复")
    card = wecom_sim.state.messages("boss")[0]
    assert card.msgtype == "textcard"
    ticket = await _click(e2e, str(card.body["url"]))
    logged = e2e.logs()
    assert '"event":"click_login"' in logged
    for secret in (s.corp, s.sso, s.token, AES_KEY, ticket):
        assert secret not in logged


async def _click(e2e: Harness, link: str) -> str:
    """Follow the card's link through WeCom OAuth to the login URL, which logs in once."""
    assert link.startswith(f"{e2e.public_url}/open/")
    login = f"{e2e.sim.url}/_sim/api/login?ticket="
    location, hops = link, 0
    while not location.startswith(login) and hops < 4:
        async with e2e.http.get(location, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location, hops = resp.headers["Location"], hops + 1
    assert hops == 3  # the link, WeCom's OAuth, the link again with the member's code
    async with e2e.http.get(location) as page:
        assert page.status == 200
        assert "logged in as boss@globex.com" in await page.text()
    async with e2e.http.get(location) as again:
        assert again.status == 403
    return location.split("ticket=", 1)[1]
