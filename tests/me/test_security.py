"""/me refuses forged and replayed states, missing CSRF tokens, other members' data and
expired sessions."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from structlog.testing import capture_logs
from yarl import URL

from bridge.delivery.preferences import Preferences, member_key
from tests.me.harness import MeSite, serve_me
from tests.plugins.wecom import WecomSim

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _start(site: MeSite, http: aiohttp.ClientSession) -> str:
    """Begin a sign-in; return the state WeCom would carry back."""
    async with http.get(f"{site.url}/me", allow_redirects=False) as resp:
        return parse_qs(urlsplit(resp.headers["location"]).query)["state"][0]


async def _callback(site: MeSite, http: aiohttp.ClientSession, state: str) -> tuple[int, str]:
    code = site.sim.state.issue_code("bob")
    url = f"{site.url}/me/callback?code={code}&state={state}"
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


def _csrf(page: str) -> str:
    return str(_CSRF.findall(page)[0])


async def test_a_forged_state_is_refused(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A state the bridge never issued is refused, even with a matching cookie."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        http.cookie_jar.update_cookies({"me_state": "forged"}, response_url=URL(site.url))
        status, body = await _callback(site, http, "forged")
        assert status == 403
        assert "登录链接已失效" in body
        assert not any(c.key == "me_session" for c in http.cookie_jar)


async def test_a_state_from_another_browser_is_refused(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A real state brought back by a browser that did not start the sign-in is refused."""
    async with serve_me(wecom_sim, tmp_path) as site:
        async with site.client() as victim:
            state = await _start(site, victim)
        async with site.client() as attacker:
            status, _ = await _callback(site, attacker, state)
    assert status == 403


async def test_a_replayed_state_is_refused(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A state works once: the same callback again is refused."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        state = await _start(site, http)
        assert (await _callback(site, http, state))[0] == 303
        http.cookie_jar.update_cookies({"me_state": state}, response_url=URL(site.url))
        status, body = await _callback(site, http, state)
    assert status == 403
    assert "already used" in body


async def test_a_code_wecom_refuses_is_a_clear_page(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A code WeCom does not know gets a 403 page that says to sign in again."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        state = await _start(site, http)
        async with http.get(f"{site.url}/me/callback?code=bogus&state={state}") as resp:
            assert resp.status == 403
            assert "企业微信没有确认您的身份" in await resp.text()


async def test_a_post_without_csrf_is_refused(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """Saving without the CSRF token, or with another session's, changes nothing."""
    async with serve_me(wecom_sim, tmp_path) as site:
        async with site.client() as other:
            other_csrf = _csrf(await site.sign_in(other, "bob"))
        async with site.client() as http:
            page = await site.sign_in(http, "bob")
            for token in ("", "nonsense", other_csrf):
                form = {"digest": "daily", "csrf": token} if token else {"digest": "daily"}
                async with http.post(f"{site.url}/me/preferences", data=form) as resp:
                    assert resp.status == 403
                    assert "这个表单已失效" in await resp.text()
            assert await site.store.get_preferences(member_key("wwsimcorp", "bob")) is None
            form = {"digest": "daily", "csrf": _csrf(page)}
            async with http.post(f"{site.url}/me/preferences", data=form) as resp:
                assert resp.status == 200
        saved = await site.store.get_preferences(member_key("wwsimcorp", "bob"))
        assert saved == Preferences(digest="daily")


async def test_another_members_data_cannot_be_read_or_changed(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """Naming eve in the query or the form touches only bob's own data."""
    eve = member_key("wwsimcorp", "eve")
    async with serve_me(wecom_sim, tmp_path) as site:
        await site.store.set_preferences(eve, Preferences(muted_keywords=("eve-secret",)))
        async with site.client() as http:
            page = await site.sign_in(http, "bob")
            for query in ("?userid=eve", "?member=wwsimcorp/eve"):
                async with http.get(f"{site.url}/me{query}") as resp:
                    text = await resp.text()
                    assert '<strong id="userid">bob</strong>' in text
                    assert "eve-secret" not in text
            form = {"csrf": _csrf(page), "userid": "eve", "member": eve, "digest": "hourly"}
            async with http.post(f"{site.url}/me/preferences", data=form) as resp:
                assert resp.status == 200
        assert await site.store.get_preferences(eve) == Preferences(muted_keywords=("eve-secret",))
        bob = await site.store.get_preferences(member_key("wwsimcorp", "bob"))
        assert bob is not None
        assert bob.digest == "hourly"


async def test_a_tampered_cookie_is_not_a_session(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """Bob's cookie rewritten to say eve (signature kept) is no session: sign in again."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        await site.sign_in(http, "bob")
        value = next(c.value for c in http.cookie_jar if c.key == "me_session")
        payload, signature = value.split(".")
        doc = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        doc[1] = "eve"
        forged = base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()
        http.cookie_jar.clear()
        for cookie in (f"{forged}.{signature}", f"{payload}.{signature[:-2]}xx", "garbage"):
            headers = {"cookie": f"me_session={cookie}"}
            async with http.get(f"{site.url}/me", allow_redirects=False, headers=headers) as resp:
                assert resp.status == 302
                assert "/wwlogin/sso/login" in resp.headers["location"]


async def test_an_expired_session_signs_in_again(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """Past its lifetime the session cookie no longer opens the page: WeCom sign-in again."""
    async with serve_me(wecom_sim, tmp_path, session_ttl_s=600) as site, site.client() as http:
        await site.sign_in(http, "bob")
        async with http.get(f"{site.url}/me", allow_redirects=False) as resp:
            assert resp.status == 200
        site.clock.advance(601)
        async with http.get(f"{site.url}/me", allow_redirects=False) as resp:
            assert resp.status == 302
            assert "/wwlogin/sso/login" in resp.headers["location"]
        page = await site.sign_in(http, "bob")
        assert '<strong id="userid">bob</strong>' in page


async def test_a_bad_field_is_named_and_nothing_is_saved(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """An unknown time zone gets a 400 naming the field; the stored preferences stay."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        page = await site.sign_in(http, "bob")
        form = {"csrf": _csrf(page), "timezone": "Mars/Olympus", "vip_senders": "boss@acme.com"}
        async with http.post(f"{site.url}/me/preferences", data=form) as resp:
            assert resp.status == 400
            text = await resp.text()
        assert "timezone: unknown time zone &#39;Mars/Olympus&#39;" in text
        assert "boss@acme.com" in text  # what was typed is still in the form
        assert await site.store.get_preferences(member_key("wwsimcorp", "bob")) is None


async def test_english_is_chosen_by_accept_language(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A browser preferring English reads the page in English; Chinese is the default."""
    async with serve_me(wecom_sim, tmp_path) as site:
        async with site.client(**{"accept-language": "en-US,en;q=0.9,zh;q=0.5"}) as http:
            page = await site.sign_in(http, "bob")
        assert "My mail notifications" in page
        assert 'lang="en"' in page
        async with site.client() as http:
            assert "我的邮件通知" in await site.sign_in(http, "bob")


async def test_an_expired_state_is_refused(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """A sign-in that comes back after `state_ttl_s` is refused: sign in again."""
    async with serve_me(wecom_sim, tmp_path, state_ttl_s=0.05) as site, site.client() as http:
        state = await _start(site, http)
        await asyncio.sleep(0.2)  # past the state's lifetime (the store expires it)
        http.cookie_jar.update_cookies({"me_state": state}, response_url=URL(site.url))
        status, body = await _callback(site, http, state)
    assert status == 403
    assert "登录链接已失效" in body


async def test_sign_in_logs_no_code_state_or_cookie(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """The sign-in's log lines name the member, never the code, the state or the cookie."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        with capture_logs() as logs:
            state = await _start(site, http)
            code = site.sim.state.issue_code("bob")
            async with http.get(f"{site.url}/me/callback?code={code}&state={state}") as resp:
                assert resp.status == 200
        cookie = next(c.value for c in http.cookie_jar if c.key == "me_session")
    text = repr(logs)
    assert "me_signed_in" in text
    for secret in (code, state, cookie):
        assert secret not in text
