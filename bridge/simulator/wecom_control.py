"""The WeCom simulator's `/_sim/` control API: members, mailboxes, faults, reset."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.wecom_state import STATE_KEY, WecomState

__all__ = ["add_control_routes"]


def _ok(body: dict[str, Any] | None = None) -> web.Response:
    return web.json_response(body or {"ok": True}, dumps=lambda o: orjson.dumps(o).decode())


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text="body must be JSON") from exc
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return doc


def _state(request: web.Request) -> WecomState:
    return request.app[STATE_KEY]


async def add_member(request: web.Request) -> web.Response:
    """`POST /_sim/members` `{"userid", "email"?, "visible"?}`."""
    doc = await _body(request)
    if not doc.get("userid"):
        raise web.HTTPBadRequest(text="userid is required")
    _state(request).add_member(
        str(doc["userid"]), str(doc.get("email") or ""), visible=bool(doc.get("visible", True))
    )
    return _ok()


async def list_members(request: web.Request) -> web.Response:
    """`GET /_sim/members`."""
    members = _state(request).members.values()
    return _ok(
        {"members": [{"userid": m.userid, "email": m.email, "visible": m.visible} for m in members]}
    )


async def remove_member(request: web.Request) -> web.Response:
    """`DELETE /_sim/members/{userid}`."""
    _state(request).remove_member(request.match_info["userid"])
    return _ok()


async def messages(request: web.Request) -> web.Response:
    """`GET /_sim/messages/{userid}`: delivered and dropped messages, in order."""
    state, userid = _state(request), request.match_info["userid"]
    return _ok(
        {
            "messages": [m.as_json() for m in state.messages(userid)],
            "dropped": [m.as_json() for m in state.dropped_messages(userid)],
        }
    )


async def faults(request: web.Request) -> web.Response:
    """`POST /_sim/faults` `{"code", "times"?, "rate"?, "endpoint"?}`."""
    doc = await _body(request)
    try:
        code = int(doc["code"])
        times, rate = int(doc.get("times", 1)), float(doc.get("rate", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text="code (int), times (int), rate (float)") from exc
    _state(request).inject(code, times=times, rate=rate, endpoint=str(doc.get("endpoint") or ""))
    return _ok()


async def current_user(request: web.Request) -> web.Response:
    """`POST /_sim/current_user` `{"userid"}`: who "is signed in" for OAuth."""
    doc = await _body(request)
    _state(request).current_user = str(doc.get("userid") or "") or None
    return _ok()


async def revoke(request: web.Request) -> web.Response:
    """`POST /_sim/revoke`: every issued access token becomes invalid."""
    _state(request).revoke_tokens()
    return _ok()


async def stats(request: web.Request) -> web.Response:
    """`GET /_sim/stats`: call counts per endpoint."""
    return _ok({"calls": dict(_state(request).calls)})


async def reset(request: web.Request) -> web.Response:
    """`POST /_sim/reset`."""
    _state(request).reset()
    return _ok()


def add_control_routes(app: web.Application) -> None:
    """Mount the control API under `/_sim/`."""
    router = app.router
    router.add_post("/_sim/members", add_member)
    router.add_get("/_sim/members", list_members)
    router.add_delete("/_sim/members/{userid}", remove_member)
    router.add_get("/_sim/messages/{userid}", messages)
    router.add_post("/_sim/faults", faults)
    router.add_post("/_sim/current_user", current_user)
    router.add_post("/_sim/revoke", revoke)
    router.add_get("/_sim/stats", stats)
    router.add_post("/_sim/reset", reset)
