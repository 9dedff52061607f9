"""The WeCom simulator's sign-in pages: the OAuth authorize page and the QR login page.

WeCom shows a phone user the OAuth consent (usually silently) and a desktop user a QR
code to scan. Here both show a list of the corp's members (and an outsider) to pick from;
picking one redirects to `redirect_uri` with `code` and `state`, as WeCom does after a
scan. `auth/getuserinfo` then resolves the code: a member's `userid`, or for an outsider
only an `openid` and an `external_userid`, as WeCom answers for non-members.

    GET /connect/oauth2/authorize?appid&redirect_uri&state&...   (as_user= or the state's
        current_user redirects at once; otherwise the picker page)
    GET /wwlogin/sso/login?login_type=CorpApp&appid&agentid&redirect_uri&state
    GET /_sim/login/pick?userid=|outsider=1&redirect_uri&state  (what the picker links to)
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from aiohttp import web
from markupsafe import escape

from bridge.simulator.wecom_state import STATE_KEY, WecomState

__all__ = ["OUTSIDER", "add_login_routes", "getuserinfo_body"]

OUTSIDER = "~outsider"  # the code of a non-member resolves to an openid, never a userid


def _state(request: web.Request) -> WecomState:
    return request.app[STATE_KEY]


def _back(redirect: str, code: str, state: str) -> web.HTTPFound:
    params = urlencode({"code": code, "state": state})
    return web.HTTPFound(f"{redirect}{'&' if '?' in redirect else '?'}{params}")


def _checked_redirect(request: web.Request) -> str:
    state, query = _state(request), request.query
    redirect = query.get("redirect_uri", "")
    appid_ok = query.get("appid") == state.corp_id or state.accept_any
    if not appid_ok or urlsplit(redirect).scheme not in {"http", "https"}:
        raise web.HTTPBadRequest(text="bad appid or redirect_uri")
    return redirect


def _picker(request: web.Request, redirect: str, title: str) -> web.Response:
    state = _state(request)
    back = {"redirect_uri": redirect, "state": request.query.get("state", "")}
    items = [
        f'<li><a class="member" data-userid="{escape(m.userid)}" '
        f'href="/_sim/login/pick?{escape(urlencode({"userid": m.userid, **back}))}">'
        f"{escape(m.userid)}</a></li>"
        for m in state.members.values()
    ]
    outsider = escape(urlencode({"outsider": "1", **back}))
    items.append(
        f'<li><a class="outsider" href="/_sim/login/pick?{outsider}">外部联系人 / outsider</a></li>'
    )
    body = (
        f'<!doctype html><meta charset="utf-8"><title>{title}</title>'
        f"<h1>{title}</h1><p>[sim] 选择登录的成员 / pick who signs in</p><ul>{''.join(items)}</ul>"
    )
    return web.Response(text=body, content_type="text/html")


async def authorize(request: web.Request) -> web.StreamResponse:
    """`GET /connect/oauth2/authorize`: straight back for `as_user`/`current_user`, else pick."""
    state = _state(request)
    state.calls["oauth2/authorize"] = state.calls.get("oauth2/authorize", 0) + 1
    redirect = _checked_redirect(request)
    userid = request.query.get("as_user") or state.current_user
    if userid:
        raise _back(redirect, state.issue_code(userid), request.query.get("state", ""))
    return _picker(request, redirect, "企业微信授权 / WeCom authorize")


async def qr_login(request: web.Request) -> web.StreamResponse:
    """`GET /wwlogin/sso/login`: the desktop QR login page (here: a member picker)."""
    state = _state(request)
    state.calls["wwlogin/sso/login"] = state.calls.get("wwlogin/sso/login", 0) + 1
    redirect = _checked_redirect(request)
    query = request.query
    agent_ok = query.get("agentid") == str(state.agent_id) or state.accept_any
    if query.get("login_type") != "CorpApp" or not agent_ok:
        raise web.HTTPBadRequest(text="login_type must be CorpApp with this app's agentid")
    if userid := query.get("as_user"):
        raise _back(redirect, state.issue_code(userid), query.get("state", ""))
    return _picker(request, redirect, "企业微信扫码登录 / WeCom QR login")


async def pick(request: web.Request) -> web.StreamResponse:
    """`GET /_sim/login/pick`: "scan" as the picked member (or an outsider) and go back."""
    state, query = _state(request), request.query
    redirect = query.get("redirect_uri", "")
    if urlsplit(redirect).scheme not in {"http", "https"}:
        raise web.HTTPBadRequest(text="bad redirect_uri")
    who = OUTSIDER if query.get("outsider") else query.get("userid", "")
    if not who:
        raise web.HTTPBadRequest(text="userid or outsider=1")
    raise _back(redirect, state.issue_code(who), query.get("state", ""))


def getuserinfo_body(state: WecomState, code: str) -> dict[str, str] | None:
    """What `auth/getuserinfo` answers for `code` (used once), None for a bad code."""
    who = state.codes.pop(code, None)
    if who is None:
        return None
    if who == OUTSIDER:
        return {"openid": "sim-openid-outsider", "external_userid": "wmsimexternal"}
    return {"userid": who}


def add_login_routes(app: web.Application) -> None:
    """Mount the sign-in pages."""
    app.router.add_get("/connect/oauth2/authorize", authorize)
    app.router.add_get("/wwlogin/sso/login", qr_login)
    app.router.add_get("/_sim/login/pick", pick)
