"""Signing in to /me: the flow by user agent, state checks, who may sign in, cookies."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.me.harness import WECOM_UA, fetch, serve_me
from tests.plugins.wecom import WecomSim


async def test_desktop_goes_to_the_qr_login_with_a_link_to_the_app_flow(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """A desktop browser is sent to the QR login page; the answer also links the OAuth flow."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        answer = await fetch(http, f"{site.url}/me")
    assert answer.status == 302
    target, body = urlsplit(answer.headers["location"]), answer.text
    assert target.path == "/wwlogin/sso/login"
    query = parse_qs(target.query)
    assert query["login_type"] == ["CorpApp"]
    assert query["appid"] == [wecom_sim.state.corp_id]
    assert query["agentid"] == [str(wecom_sim.state.agent_id)]
    assert query["redirect_uri"] == [f"{site.url}/me/callback"]
    assert "/connect/oauth2/authorize" in body


async def test_wecom_client_goes_to_oauth_with_a_link_to_the_qr_login(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """WeCom's in-app browser is sent to the OAuth authorize URL; the answer links the QR page."""
    async with (
        serve_me(wecom_sim, tmp_path) as site,
        site.client(**{"user-agent": WECOM_UA}) as http,
    ):
        answer = await fetch(http, f"{site.url}/me")
    location, body = answer.headers["location"], answer.text
    target = urlsplit(location)
    assert target.path == "/connect/oauth2/authorize"
    assert location.endswith("#wechat_redirect")
    assert parse_qs(target.query)["scope"] == ["snsapi_base"]
    assert "/wwlogin/sso/login" in body


async def test_qr_sign_in_shows_the_members_own_page(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """Picking a member on the simulated QR page lands on that member's page."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        page = await site.sign_in(http, "bob")
    assert '<strong id="userid">bob</strong>' in page
    assert "bob@acme.com" in page
    assert "我的邮件通知" in page


async def test_session_cookie_is_httponly_lax_and_expiring(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """The session cookie is HttpOnly, SameSite=Lax, has a Max-Age, and no Secure on http."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        await site.sign_in(http, "bob")
        cookie = next(c for c in http.cookie_jar if c.key == "me_session")
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == str(8 * 3600)
    assert not cookie["secure"]


async def test_https_public_url_makes_cookies_secure(wecom_sim: WecomSim, tmp_path: Path) -> None:
    """With an https public_url the state and session cookies carry Secure."""
    site_ctx = serve_me(wecom_sim, tmp_path, public_url="https://mail.acme.test")
    async with site_ctx as site, site.client() as http:
        start = await fetch(http, f"{site.url}/me")
        assert "Secure" in start.headers["set-cookie"]
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        code = wecom_sim.state.issue_code("bob")
        url = f"{site.url}/me/callback?code={code}&state={state}"
        # The client keeps Secure cookies off plain http; send the state as a browser on
        # https would.
        answer = await fetch(http, url, headers={"cookie": f"me_state={state}"})
    assert answer.status == 303
    session = [h for h in answer.headers.getall("set-cookie") if "me_session=" in h]
    assert "Secure" in session[0]
    assert "HttpOnly" in session[0]


async def test_an_outsider_is_refused_with_a_clear_page(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """An external contact picked on the QR page gets a 403 page saying only members may sign in."""
    async with serve_me(wecom_sim, tmp_path) as site, site.client() as http:
        async with http.get(f"{site.url}/me") as resp:
            picker = await resp.text()
        href = picker.split('class="outsider" href="')[1].split('"')[0].replace("&amp;", "&")
        async with http.get(f"{wecom_sim.url}{href}") as resp:
            assert resp.status == 403
            body = await resp.text()
        assert not any(c.key == "me_session" for c in http.cookie_jar)
    assert "只有本企业的成员可以登录" in body
    assert "Only members of this company can sign in" in body
