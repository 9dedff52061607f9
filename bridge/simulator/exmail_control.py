"""The simulator's control API under `/_sim/`: JSON in, JSON out, mirroring ExmailSimState.

POST   /_sim/mail      {"tenant", "to", "from", "subject", "summary"} -> {"mail_id"}
                       (404 naming `tenant` when no such client_id is known)
POST   /_sim/unread    {"tenant", "mailbox", "count"}       set the count, queue a push
POST   /_sim/read      {"tenant", "mailbox"}                one mail read: count - 1
POST   /_sim/users     {"tenant", "action": add|modify|remove, "alias", ...fields} -> {"ver"}
POST   /_sim/repush    {"tenant", "mail_id"}                the same new-mail push again
POST   /_sim/push      {"tenant", "push": {...}}            any object as a push
POST   /_sim/revoke    {"tenant"}                           revoke the tenant's tokens
POST   /_sim/faults    {"tenant"?, ...Faults fields}        replace faults (global if no tenant)
DELETE /_sim/faults                                         clear every fault
POST   /_sim/settings  {"tenant"?, ...SimSettings fields}   hold_s, framing, heartbeat, ...
GET    /_sim/stats?tenant=<client_id>
POST   /_sim/reset
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.exmail_api import STATE
from bridge.simulator.exmail_state import ExmailSimState, UnknownTenant

__all__ = ["control_routes"]

Op = Callable[[ExmailSimState, dict[str, Any]], Any]


def _json_op(op: Op) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
            result = op(request.app[STATE], body)
        except UnknownTenant as exc:
            return web.json_response({"error": _unknown_tenant(exc)}, status=404)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response(result if result is not None else {"ok": True})

    return handler


def _unknown_tenant(exc: UnknownTenant) -> str:
    return (
        f"tenant: no tenant with client_id {exc.args[0]!r} (give the tenant's client_id, "
        "not its name; without --tenants a tenant is known once it has fetched a token)"
    )


def _mail(s: ExmailSimState, b: dict[str, Any]) -> dict[str, Any]:
    if not s.known(str(b["tenant"])):
        raise UnknownTenant(str(b["tenant"]))
    mail_id = s.send_mail(
        b["tenant"],
        to=b["to"],
        sender=b.get("from", "sender@example.com"),
        subject=b.get("subject", ""),
        summary=b.get("summary", ""),
    )
    return {"mail_id": mail_id}


def _users(s: ExmailSimState, b: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in b.items() if k not in ("tenant", "action", "alias")}
    action = b["action"]
    if action == "add":
        return {"ver": s.add_user(b["tenant"], b["alias"], **fields)}
    if action == "modify":
        return {"ver": s.modify_user(b["tenant"], b["alias"], **fields)}
    if action == "remove":
        return {"ver": s.remove_user(b["tenant"], b["alias"])}
    raise ValueError("action must be add, modify or remove")


def _read(s: ExmailSimState, b: dict[str, Any]) -> dict[str, Any]:
    return {"count": s.mark_read(b["tenant"], b["mailbox"])}


def _revoke(s: ExmailSimState, b: dict[str, Any]) -> dict[str, Any]:
    return {"revoked": s.revoke_tokens(b["tenant"])}


def _scoped(b: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    return b.get("tenant"), {k: v for k, v in b.items() if k != "tenant"}


def _faults(s: ExmailSimState, b: dict[str, Any]) -> None:
    tenant, fields = _scoped(b)
    s.set_faults(tenant, **fields)


def _settings(s: ExmailSimState, b: dict[str, Any]) -> None:
    tenant, fields = _scoped(b)
    s.configure(tenant, **fields)


async def _stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].stats(request.query.get("tenant", "")))


def control_routes() -> list[web.RouteDef]:
    """The `/_sim/` routes."""
    ops: dict[str, Op] = {
        "mail": _mail,
        "unread": lambda s, b: s.set_unread(b["tenant"], b["mailbox"], int(b["count"])),
        "read": _read,
        "users": _users,
        "repush": lambda s, b: s.repush(b["tenant"], b["mail_id"]),
        "push": lambda s, b: s.push_raw(b["tenant"], dict(b["push"])),
        "revoke": _revoke,
        "faults": _faults,
        "settings": _settings,
        "reset": lambda s, b: s.reset(),
    }
    routes = [web.post(f"/_sim/{name}", _json_op(op)) for name, op in ops.items()]
    routes.append(web.delete("/_sim/faults", _json_op(lambda s, b: s.clear_faults())))
    routes.append(web.get("/_sim/stats", _stats))
    return routes
