"""A WeCom (企业微信) API simulator: tokens, app messages, email lookup and web OAuth.

It behaves like WeCom where the bridge depends on it:
- `GET /cgi-bin/gettoken` answers 40001 unless corpid/corpsecret match the state's (with
  `accept_any`, as `exmail-bridge simulate` runs it: any corp, secret, agent and member).
- `POST /cgi-bin/message/send` checks the byte limits (textcard title <= 128 B,
  description <= 512 B, url <= 2048 B, btntxt <= 4 characters; text <= 2048 B) and answers
  **45002** ("content size out of limit") past them, 44004 when a required field is empty;
  lists unknown or invisible members in `invaliduser` and sends to the rest; answers 81013
  when no recipient is valid; and beyond 30 messages per member per minute (1000 per
  hour) DROPS the message while answering errcode 0, as WeCom does. Dropped messages are
  recorded in the state so tests can see them.
- `POST /cgi-bin/user/get_userid_by_email` answers 46004 for an unknown email.
- `GET /connect/oauth2/authorize` redirects to `redirect_uri` with `code` and `state` for
  the member given by the `as_user` query parameter, else the state's `current_user`,
  else shows a page to pick a member; `GET /wwlogin/sso/login` is the desktop QR login
  page, the same picker (`bridge.simulator.wecom_login`).
- `GET /cgi-bin/auth/getuserinfo` turns a code into a userid once (an outsider's into an
  openid and external_userid only); 40029 otherwise. `GET /cgi-bin/user/get` answers a
  member's email.

Control API (JSON): `POST /_sim/members` `{"userid","email","visible"}`,
`DELETE /_sim/members/{userid}`, `GET /_sim/messages/{userid}` (`messages`, `dropped`),
`POST /_sim/faults` `{"code", "times"?, "rate"?, "endpoint"?}`, `POST /_sim/current_user`
`{"userid"}`, `POST /_sim/revoke`, `GET /_sim/stats`, `POST /_sim/reset`.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.wecom_control import add_control_routes
from bridge.simulator.wecom_login import add_login_routes, getuserinfo_body
from bridge.simulator.wecom_state import STATE_KEY, Sent, WecomState

__all__ = ["STATE_KEY", "make_wecom_app"]

_ERRMSG = {
    40001: "invalid credential, hint: [sim] more info at ?e=40001",
    40014: "invalid access_token, hint: [sim]",
    40029: "invalid code, hint: [sim]",
    40056: "invalid agentid, hint: [sim]",
    41001: "access_token missing, hint: [sim]",
    42001: "access_token expired, hint: [sim]",
    44004: "empty content, hint: [sim]",
    45002: "content size out of limit, hint: [sim]",
    45009: "api freq out of limit, hint: [sim]",
    60111: "userid not found, hint: [sim]",
    45033: "api concurrent out of limit, hint: [sim]",
    46004: "user no exist, hint: [sim]",
    48002: "api forbidden, hint: [sim]",
    60020: "not allow to access from your ip, hint: [sim] from ip: 127.0.0.1",
    81013: "user & party & tag all invalid, hint: [sim]",
    -1: "system busy, hint: [sim]",
}
_TEXTCARD_LIMITS_B = {"title": 128, "description": 512, "url": 2048}


def _reply(code: int, **extra: Any) -> web.Response:
    body = {"errcode": code, "errmsg": _ERRMSG.get(code, "error") if code else "ok", **extra}
    return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())


def _state(request: web.Request) -> WecomState:
    return request.app[STATE_KEY]


def _count(state: WecomState, endpoint: str) -> None:
    state.calls[endpoint] = state.calls.get(endpoint, 0) + 1


def _guard(request: web.Request, endpoint: str) -> int:
    """Count the call; the errcode of an injected fault or a bad token, else 0."""
    state = _state(request)
    _count(state, endpoint)
    fault = state.take_fault(endpoint)
    if fault is not None:
        return fault
    return state.token_error(request.query.get("access_token", ""))


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def gettoken(request: web.Request) -> web.Response:
    """`GET /cgi-bin/gettoken?corpid=&corpsecret=`."""
    state = _state(request)
    _count(state, "gettoken")
    fault = state.take_fault("gettoken")
    if fault is not None:
        return _reply(fault)
    query = request.query
    if not state.credentials_ok(query.get("corpid", ""), query.get("corpsecret", "")):
        return _reply(40001)
    return _reply(0, access_token=state.issue_token(), expires_in=state.token_ttl_s)


def _content_error(doc: dict[str, Any]) -> int:
    """44004 / 45002 when the message body is empty or over WeCom's limits."""
    msgtype = doc.get("msgtype")
    if msgtype == "text":
        content = str((doc.get("text") or {}).get("content") or "")
        if not content:
            return 44004
        return 45002 if len(content.encode()) > 2048 else 0
    if msgtype == "textcard":
        return _textcard_error(doc.get("textcard") or {})
    return 40008  # invalid message type


def _textcard_error(card: dict[str, Any]) -> int:
    for key, limit_b in _TEXTCARD_LIMITS_B.items():
        value = str(card.get(key) or "")
        if not value:
            return 44004
        if len(value.encode()) > limit_b:
            return 45002
    return 45002 if len(str(card.get("btntxt") or "")) > 4 else 0


def _recipients(state: WecomState, touser: str) -> tuple[list[str], list[str]]:
    valid: list[str] = []
    invalid: list[str] = []
    for userid in filter(None, touser.split("|")):
        member = state.member(userid)
        (valid if member is not None and member.visible else invalid).append(userid)
    return valid, invalid


async def message_send(request: web.Request) -> web.Response:
    """`POST /cgi-bin/message/send?access_token=`."""
    code = _guard(request, "message/send")
    if code:
        return _reply(code)
    state, doc = _state(request), await _json(request)
    if doc.get("agentid") != state.agent_id and not state.accept_any:
        return _reply(40056)
    if code := _content_error(doc):
        return _reply(code)
    valid, invalid = _recipients(state, str(doc.get("touser") or ""))
    if not valid:
        return _reply(81013, invaliduser="|".join(invalid).lower())
    msgid = secrets.token_urlsafe(16)
    msgtype = str(doc["msgtype"])
    for userid in valid:
        sent = Sent(msgid=msgid, msgtype=msgtype, body=dict(doc[msgtype]), at=state.clock())
        state.deliver(userid, sent)
    if state.answer_delay_s:  # the message went out; only the answer is late
        await asyncio.sleep(state.answer_delay_s)
    return _reply(0, invaliduser="|".join(invalid).lower(), msgid=msgid)


async def get_userid_by_email(request: web.Request) -> web.Response:
    """`POST /cgi-bin/user/get_userid_by_email` `{"email", "email_type"}`."""
    code = _guard(request, "user/get_userid_by_email")
    if code:
        return _reply(code)
    doc = await _json(request)
    userid = _state(request).userid_by_email(str(doc.get("email") or ""))
    return _reply(0, userid=userid) if userid else _reply(46004)


async def getuserinfo(request: web.Request) -> web.Response:
    """`GET /cgi-bin/auth/getuserinfo?access_token=&code=`."""
    code = _guard(request, "auth/getuserinfo")
    if code:
        return _reply(code)
    body = getuserinfo_body(_state(request), request.query.get("code", ""))
    return _reply(0, **body) if body is not None else _reply(40029)


async def user_get(request: web.Request) -> web.Response:
    """`GET /cgi-bin/user/get?userid=`: the member's `email` and `biz_mail`, or 60111."""
    code = _guard(request, "user/get")
    if code:
        return _reply(code)
    member = _state(request).member(request.query.get("userid", ""))
    if member is None:
        return _reply(60111)
    return _reply(0, userid=member.userid, email=member.email, biz_mail=member.email)


def _add_api(app: web.Application) -> None:
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_post("/cgi-bin/message/send", message_send)
    app.router.add_post("/cgi-bin/user/get_userid_by_email", get_userid_by_email)
    app.router.add_get("/cgi-bin/auth/getuserinfo", getuserinfo)
    app.router.add_get("/cgi-bin/user/get", user_get)


def make_wecom_app(state: WecomState | None = None) -> web.Application:
    """The simulator as an aiohttp application; `app[STATE_KEY]` is its state."""
    app = web.Application()
    app[STATE_KEY] = state if state is not None else WecomState()
    _add_api(app)
    add_login_routes(app)
    add_control_routes(app)
    return app
