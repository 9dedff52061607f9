"""The simulated new Exmail API (`/cgi-bin/...` as on api.exmail.qq.com): token and SSO.

Answers use the new API's shape, `{"errcode": 0, "errmsg": "ok", ...}`. Other modules add
more endpoints with `authorized()`, which checks the token and applies errcode faults.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from bridge.simulator.exmail_newapi_state import NewApiState, Token

__all__ = ["NEWAPI", "authorized", "errcode_answer", "http_routes"]

NEWAPI = web.AppKey("exmail_newapi_state", NewApiState)
_ERRMSG = {
    40001: "invalid credential",
    40014: "invalid access_token",
    42001: "access_token expired",
    60111: "userid not found",
    -1: "system busy",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
}


def errcode_answer(errcode: int) -> web.Response:
    """An error answer of the new API (HTTP 200, like Tencent)."""
    return web.json_response({"errcode": errcode, "errmsg": _ERRMSG.get(errcode, "error")})


def ok(**fields: Any) -> web.Response:
    """A success answer."""
    return web.json_response({"errcode": 0, "errmsg": "ok", **fields})


def authorized(request: web.Request, endpoint: str) -> Token | web.Response:
    """The caller's token, or the error answer to give instead (bad token or a fault)."""
    state = request.app[NEWAPI]
    injected = state.next_errcode(endpoint)
    if injected:
        return errcode_answer(injected)
    token = state.token(request.query.get("access_token", ""))
    return errcode_answer(token) if isinstance(token, int) else token


async def gettoken(request: web.Request) -> web.StreamResponse:
    """`GET /cgi-bin/gettoken?corpid&corpsecret`."""
    state = request.app[NEWAPI]
    corp_id = request.query.get("corpid", "")
    state.token_requests[corp_id] += 1
    injected = state.next_errcode("gettoken")
    if injected:
        return errcode_answer(injected)
    issued = state.issue_token(corp_id, request.query.get("corpsecret", ""))
    if issued is None:
        return errcode_answer(40001)
    return ok(access_token=issued[0], expires_in=issued[1])


async def get_login_url(request: web.Request) -> web.StreamResponse:
    """`GET /cgi-bin/service/get_login_url?access_token&userid`: a single-use login URL."""
    token = authorized(request, "service/get_login_url")
    if isinstance(token, web.Response):
        return token
    userid = request.query.get("userid", "")
    if "@" not in userid:
        return errcode_answer(60111)
    ticket = request.app[NEWAPI].new_ticket(token, userid)
    url = f"{request.url.origin()}/_sim/api/login?ticket={ticket}"
    return ok(login_url=url, expires_in=request.app[NEWAPI].settings.login_ttl_s)


async def login(request: web.Request) -> web.StreamResponse:
    """The page a login URL opens: 200 once for a live ticket, 403 after."""
    user = request.app[NEWAPI].use_ticket(request.query.get("ticket", ""))
    if user is None:
        text = "<html><body>login refused: ticket used or expired</body></html>"
        return web.Response(text=text, status=403, content_type="text/html")
    text = f"<html><body>logged in as {html.escape(user)}</body></html>"
    return web.Response(text=text, content_type="text/html")


def http_routes() -> list[web.RouteDef]:
    """The new-API routes of this module."""
    return [
        web.get("/cgi-bin/gettoken", gettoken),
        web.get("/cgi-bin/service/get_login_url", get_login_url),
        web.get("/_sim/api/login", login),
    ]
