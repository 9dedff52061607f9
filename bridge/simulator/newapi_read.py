"""The simulated new Exmail API's read endpoints, and WeCom-native mail's (`qyapi`) newcount.

Served on the legacy simulator's port, over the same tenants: a tenant of the new API is
keyed by its CorpID (the token endpoint issues tokens for it), its directory is the
simulator's user list, and its unread counts are the same counts `/_sim/mail` raises.

- `GET  /cgi-bin/mail/newcount?access_token&userid[&begin_date&end_date]` and the POST
  variant with a JSON body: `{"errcode":0,"errmsg":"ok","count":N}`. With the setting
  `newcount_dates = "required"` a request without both dates answers 40035 (the
  contradicting docs make dates mandatory); dates must look like 2016-10-01.
- `GET  /cgi-bin/department/list?access_token[&id]`: the root (id 1) and the departments
  named in users' `department` field.
- `GET  /cgi-bin/user/simplelist?access_token&department_id[&fetch_child]`.
- `POST /cgi-bin/exmail/mail/get_newcount` `{"userid": <WeCom userid>}` (qyapi).
- `POST /cgi-bin/user/get_userid_by_email` `{"email", "email_type"}` (qyapi): a member's
  WeCom userid is its user field `wecom_userid`, else the mailbox's local part.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.exmail_api import STATE
from bridge.simulator.exmail_faults import Faults
from bridge.simulator.exmail_state import SimTenant
from bridge.simulator.exmail_wire import Answer, inject, json_answer, write_json

__all__ = ["errcode_answer", "newapi_prelude", "newapi_read_routes", "wecom_userid"]

ROOT_DEPARTMENT = 1
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ERRMSG = {
    40014: "invalid access_token",
    40035: "invalid parameter",
    46004: "user no exist",
    60111: "userid not found",
}


def errcode_answer(code: int) -> Answer:
    """An `Answer` with the new API's error shape (HTTP 200, numeric errcode)."""
    return json_answer({"errcode": code, "errmsg": _ERRMSG.get(code, "error")})


async def _fields(request: web.Request) -> dict[str, Any]:
    """Query string and, for a JSON POST, its body (the body wins)."""
    fields: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise errcode_answer(40035) from None
        if not isinstance(body, dict):
            raise errcode_answer(40035)
        fields.update(body)
    return fields


async def newapi_prelude(
    request: web.Request, endpoint: str
) -> tuple[SimTenant, dict[str, Any], Faults]:
    """Authenticate a new-API call by `access_token` and apply its faults."""
    state = request.app[STATE]
    fields = await _fields(request)
    tenant = state.tenant_of_token(str(fields.get("access_token", "")))
    if tenant is None:
        raise errcode_answer(40014)
    faults = state.faults_for(tenant, endpoint)
    await inject(request, state, tenant, faults)
    return tenant, fields, faults


def wecom_userid(tenant: SimTenant, mailbox: str) -> str:
    """The WeCom userid of `mailbox` in a wecom-mail tenant."""
    user = tenant.users.get(mailbox) or {}
    return str(user.get("wecom_userid") or mailbox.split("@")[0])


def _ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _check_dates(request: web.Request, tenant: SimTenant, fields: dict[str, Any]) -> None:
    dates = [str(fields.get(k, "")) for k in ("begin_date", "end_date")]
    given = [d for d in dates if d]
    if any(not _DATE_RE.match(d) for d in given):
        raise errcode_answer(40035)
    required = request.app[STATE].settings_for(tenant).newcount_dates == "required"
    if required and len(given) < len(dates):
        raise errcode_answer(40035)


async def newcount(request: web.Request) -> web.StreamResponse:
    """`mail/newcount`: a mailbox's unread count (GET, or POST with a JSON body)."""
    tenant, fields, faults = await newapi_prelude(request, "mail/newcount")
    _check_dates(request, tenant, fields)
    mailbox = str(fields.get("userid", ""))
    if not tenant.knows(mailbox):
        raise errcode_answer(60111)
    return await write_json(request, _ok(count=tenant.unread.get(mailbox, 0)), faults)


def _departments(tenant: SimTenant) -> list[dict[str, Any]]:
    found = {ROOT_DEPARTMENT}
    for user in tenant.users.values():
        found.update(int(d) for d in user.get("department", ()))
    root = {"id": ROOT_DEPARTMENT, "name": tenant.client_id, "parentid": 0, "order": 0}
    rest = [{"id": d, "name": f"dept-{d}", "parentid": 1, "order": d} for d in sorted(found - {1})]
    return [root, *rest]


async def department_list(request: web.Request) -> web.StreamResponse:
    """`department/list`: the root and its child departments (`id` narrows to one subtree)."""
    tenant, fields, faults = await newapi_prelude(request, "department/list")
    wanted = str(fields.get("id") or ROOT_DEPARTMENT)
    departments = _departments(tenant)
    if wanted != str(ROOT_DEPARTMENT):
        departments = [d for d in departments if str(d["id"]) == wanted]
    return await write_json(request, _ok(department=departments), faults)


def _in_department(user: dict[str, Any], department: int, fetch_child: bool) -> bool:
    departments = [int(d) for d in user.get("department", ())] or [ROOT_DEPARTMENT]
    if department == ROOT_DEPARTMENT and fetch_child:
        return True  # every department here is a child of the root
    return department in departments


async def user_simplelist(request: web.Request) -> web.StreamResponse:
    """`user/simplelist`: members of a department (and its children with fetch_child=1)."""
    tenant, fields, faults = await newapi_prelude(request, "user/simplelist")
    raw = str(fields.get("department_id", ""))
    if not raw.isdigit():
        raise errcode_answer(40035)
    fetch_child = str(fields.get("fetch_child", "0")) == "1"
    members = [
        {
            "userid": alias,
            "name": user.get("Name", alias.split("@")[0]),
            "department": [int(d) for d in user.get("department", ())] or [ROOT_DEPARTMENT],
        }
        for alias, user in tenant.users.items()
        if _in_department(user, int(raw), fetch_child)
    ]
    return await write_json(request, _ok(userlist=members), faults)


def _mailbox_of(tenant: SimTenant, userid: str) -> str | None:
    boxes = [*tenant.users, *(m for m in tenant.unread if m not in tenant.users)]
    return next((m for m in boxes if wecom_userid(tenant, m) == userid), None)


async def get_newcount(request: web.Request) -> web.StreamResponse:
    """qyapi `exmail/mail/get_newcount`: a member's unread count by WeCom userid."""
    tenant, fields, faults = await newapi_prelude(request, "exmail/mail/get_newcount")
    mailbox = _mailbox_of(tenant, str(fields.get("userid", "")))
    if mailbox is None:
        raise errcode_answer(46004)
    return await write_json(request, _ok(count=tenant.unread.get(mailbox, 0)), faults)


async def userid_by_email(request: web.Request) -> web.StreamResponse:
    """qyapi `user/get_userid_by_email`: the member who owns a mailbox."""
    tenant, fields, faults = await newapi_prelude(request, "user/get_userid_by_email")
    email = str(fields.get("email", "")).lower()
    mailbox = next((m for m in [*tenant.users, *tenant.unread] if m.lower() == email), None)
    if mailbox is None:
        raise errcode_answer(46004)
    return await write_json(request, _ok(userid=wecom_userid(tenant, mailbox)), faults)


def newapi_read_routes() -> list[web.RouteDef]:
    """The routes above (the token endpoint lives with the callback path)."""
    return [
        web.route("*", "/cgi-bin/mail/newcount", newcount),
        web.get("/cgi-bin/department/list", department_list),
        web.get("/cgi-bin/user/simplelist", user_simplelist),
        web.post("/cgi-bin/exmail/mail/get_newcount", get_newcount),
        web.post("/cgi-bin/user/get_userid_by_email", userid_by_email),
    ]
