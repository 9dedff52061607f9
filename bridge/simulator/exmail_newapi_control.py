"""The new-API simulator's control API, and how it is installed on the simulator's app.

POST /_sim/mail        {"tenant": <corp_id>, "to", "from", "subject", "wait"?, "unread"?}
                       for a new-API corp: count +1 and a `Mail` callback (then an
                       `UnRead` one with "unread": true) -> {"mail_id", "deliveries"?}
                       (a legacy client_id falls through to the legacy simulator)
POST /_sim/api/corps   {"corp_id", "secrets"?: {app: secret}, "callback"?: {"url",
                       "token", "aes_key"}, "unread"?: {mailbox: n}}   add or update
POST /_sim/api/unread  {"tenant", "mailbox", "count", "wait"?}  set it, `UnRead` callback
POST /_sim/api/faults  {"errcodes"?: {endpoint: [errcode, ...]}, "callbacks"?:
                       {"bad_signature"|"wrong_corp"|"stale_timestamp"|"duplicate": n},
                       "settings"?: {NewApiSettings fields}}
POST /_sim/api/revoke  {"tenant"}                 forget the corp's tokens
GET  /_sim/api/stats?tenant=<corp_id>
POST /_sim/api/reset
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, fields
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.simulator.exmail_newapi_callbacks import deliver, mail_message, unread_message
from bridge.simulator.exmail_newapi_http import NEWAPI, http_routes
from bridge.simulator.exmail_newapi_state import (
    CALLBACK_FAULTS,
    ApiCorp,
    CallbackTarget,
    NewApiSettings,
    NewApiState,
)

__all__ = ["install_newapi"]

TASKS = web.AppKey("exmail_newapi_tasks", set[asyncio.Task[Any]])
Op = Callable[[web.Request, dict[str, Any]], Awaitable[dict[str, Any]]]


def _json_op(op: Op) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
            return web.json_response(await op(request, body))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)

    return handler


def _corp(state: NewApiState, corp_id: str) -> ApiCorp:
    corp = state.corp(corp_id)
    if corp is None:
        raise KeyError(f"unknown corp {corp_id}")
    return corp


async def _send(request: web.Request, body: dict[str, Any], job: Awaitable[Any]) -> Any:
    """Await the delivery when the caller asked to `wait`, else run it in the background."""
    if body.get("wait"):
        return await job
    task = asyncio.ensure_future(job)
    request.app[TASKS].add(task)
    task.add_done_callback(request.app[TASKS].discard)
    return None


async def _mail(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = request.app[NEWAPI]
    corp, count = state.arrive(body["tenant"], body["to"])
    mail_id = base64.b64encode(secrets.token_bytes(32)).decode()
    message = mail_message(
        corp.corp_id,
        mail_id=mail_id,
        to=body["to"],
        sender=body.get("from", "sender@example.com"),
        subject=body.get("subject", ""),
        count=count,
    )

    async def job() -> list[dict[str, Any]]:
        tries = await deliver(state, corp, "mail", message)
        if body.get("unread"):
            unread = unread_message(corp.corp_id, mailbox=body["to"], count=count)
            tries += await deliver(state, corp, "unread", unread)
        return [asdict(t) for t in tries]

    deliveries = await _send(request, body, job())
    return {"mail_id": mail_id, **({"deliveries": deliveries} if deliveries is not None else {})}


async def _unread(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = request.app[NEWAPI]
    corp = _corp(state, body["tenant"])
    count = int(body["count"])
    corp.unread[body["mailbox"]] = count
    message = unread_message(corp.corp_id, mailbox=body["mailbox"], count=count)

    async def job() -> list[dict[str, Any]]:
        return [asdict(t) for t in await deliver(state, corp, "unread", message)]

    deliveries = await _send(request, body, job())
    return {"count": count, **({"deliveries": deliveries} if deliveries is not None else {})}


async def _corps(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = request.app[NEWAPI]
    corp_id = str(body["corp_id"])
    corp = state.corps.setdefault(corp_id, ApiCorp(corp_id=corp_id))
    if "secrets" in body:
        corp.secrets = {str(k): str(v) for k, v in dict(body["secrets"]).items()}
    if body.get("callback"):
        corp.callback = CallbackTarget(**{k: str(v) for k, v in dict(body["callback"]).items()})
    corp.unread.update({str(k): int(v) for k, v in dict(body.get("unread", {})).items()})
    return {"corp_id": corp_id}


async def _faults(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = request.app[NEWAPI]
    for endpoint, codes in dict(body.get("errcodes", {})).items():
        state.errcodes.setdefault(str(endpoint), deque()).extend(int(c) for c in codes)
    for name, times in dict(body.get("callbacks", {})).items():
        if name not in CALLBACK_FAULTS:
            raise ValueError(f"unknown callback fault {name!r}")
        state.callback_faults[name] += int(times)
    known = {f.name for f in fields(NewApiSettings)}
    for key, value in dict(body.get("settings", {})).items():
        if key not in known:
            raise ValueError(f"unknown setting {key!r}")
        setattr(state.settings, key, type(getattr(state.settings, key))(value))
    return {"ok": True}


async def _revoke(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return {"revoked": request.app[NEWAPI].revoke_tokens(body["tenant"])}


async def _reset(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    request.app[NEWAPI].reset()
    return {"ok": True}


async def _stats(request: web.Request) -> web.StreamResponse:
    state = request.app[NEWAPI]
    corp_id = request.query.get("tenant", "")
    corp = state.corps.get(corp_id)
    return web.json_response(
        {
            "token_requests": state.token_requests[corp_id],
            "unread": dict(corp.unread) if corp else {},
            "deliveries": [asdict(d) for d in state.deliveries if d.corp_id == corp_id],
            "logins": [user for corp_, user in state.logins if corp_ == corp_id],
            "login_url_requests": [
                {"user": user, "app": app}
                for corp_, user, app in state.login_url_requests
                if corp_ == corp_id
            ],
        }
    )


@web.middleware
async def _route_api_mail(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`/_sim/mail` for a new-API corp goes here; for a legacy client_id, on to the legacy."""
    if request.method == "POST" and request.path == "/_sim/mail":
        raw = await request.read()  # aiohttp keeps the bytes: the legacy handler reads them too
        with_tenant = _tenant_of(raw)
        if with_tenant and with_tenant in request.app[NEWAPI].corps:
            return await _json_op(_mail)(request)
    return await handler(request)


def _tenant_of(raw: bytes) -> str:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return ""
    return str(body.get("tenant", "")) if isinstance(body, dict) else ""


async def _cancel_tasks(app: web.Application) -> None:
    tasks: set[asyncio.Task[Any]] = app[TASKS]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def install_newapi(
    app: web.Application,
    *,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
    settings: NewApiSettings | None = None,
) -> NewApiState:
    """Add the new API, its control routes and its `/_sim/mail` routing to `app`."""
    state = app[NEWAPI] = NewApiState(credentials=credentials, settings=settings)
    tasks: set[asyncio.Task[Any]] = set()
    app[TASKS] = tasks
    ops: dict[str, Op] = {
        "corps": _corps,
        "unread": _unread,
        "faults": _faults,
        "revoke": _revoke,
        "reset": _reset,
    }
    app.add_routes([web.post(f"/_sim/api/{name}", _json_op(op)) for name, op in ops.items()])
    app.add_routes([web.get("/_sim/api/stats", _stats), *http_routes()])
    app.middlewares.append(_route_api_mail)
    app.on_shutdown.append(_cancel_tasks)
    return state
