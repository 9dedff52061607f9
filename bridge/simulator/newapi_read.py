"""The simulated new Exmail API's read endpoints, and WeCom-native mail's (`qyapi`) newcount.

Served on the legacy simulator's port over the new-API corps (`exmail_newapi_state`): a
corp's directory is its `users`, its unread counts the ones `/_sim/mail` raises. A
`wecom-mail` tenant points `wecom_api_url` here too, so its token, its mailbox -> member
lookup and its counts come from the same corp.

- `GET  /cgi-bin/mail/newcount?access_token&userid[&begin_date&end_date]`, and the POST
  variant with a JSON body: `{"errcode":0,"errmsg":"ok","count":N}`. With the setting
  `newcount_dates = "required"` a request without both dates answers 40035 (one copy of
  the docs makes them mandatory); dates must look like 2016-10-01.
- `GET  /cgi-bin/department/list?access_token[&id]`: the root (id 1) and the departments
  named in users' `department` lists.
- `GET  /cgi-bin/user/simplelist?access_token&department_id[&fetch_child]`.
- `POST /cgi-bin/exmail/mail/get_newcount` `{"userid": <WeCom userid>}` (qyapi).
- `POST /cgi-bin/user/get_userid_by_email` `{"email", "email_type"}` (qyapi): a member's
  WeCom userid is its user field `wecom_userid`, else the mailbox's local part.
- Control: `POST /_sim/api/users` `{"tenant", "action": add|modify|remove, "userid",
  "name"?, "department"?: [ids], "wecom_userid"?}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.simulator.exmail_api import STATE
from bridge.simulator.exmail_newapi_http import NEWAPI, authorized, errcode_answer, ok
from bridge.simulator.exmail_newapi_state import ApiCorp

__all__ = ["newapi_read_routes", "wecom_userid"]

ROOT_DEPARTMENT = 1
BAD_PARAMETER, NO_USER, NO_MEMBER = 40035, 60111, 46004
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Reader = Callable[[web.Request, ApiCorp, dict[str, Any]], web.Response]


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__("refused")
        self.response = response


async def _call(request: web.Request, endpoint: str) -> tuple[ApiCorp, dict[str, Any]]:
    """The caller's corp and its parameters (query, and a JSON body's fields)."""
    token = authorized(request, endpoint)
    if isinstance(token, web.Response):
        raise _Refused(token)
    fields: dict[str, Any] = dict(request.query)
    if request.method == "POST":
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise _Refused(errcode_answer(BAD_PARAMETER))
        fields.update(body)
    corp = request.app[NEWAPI].corp(token.corp_id)
    if corp is None:
        raise _Refused(errcode_answer(40014))
    return corp, fields


def _handler(endpoint: str, answer: Reader) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            corp, fields = await _call(request, endpoint)
        except _Refused as refused:
            return refused.response
        return answer(request, corp, fields)

    return handler


def wecom_userid(corp: ApiCorp, mailbox: str) -> str:
    """The WeCom userid of `mailbox`."""
    user = corp.users.get(mailbox) or {}
    return str(user.get("wecom_userid") or mailbox.split("@")[0])


def _mailboxes(corp: ApiCorp) -> list[str]:
    return [*corp.users, *(m for m in corp.unread if m not in corp.users)]


def _newcount(request: web.Request, corp: ApiCorp, fields: dict[str, Any]) -> web.Response:
    dates = [str(fields.get(k) or "") for k in ("begin_date", "end_date")]
    if any(d and not _DATE_RE.match(d) for d in dates):
        return errcode_answer(BAD_PARAMETER)
    required = request.app[NEWAPI].settings.newcount_dates == "required"
    if required and not all(dates):
        return errcode_answer(BAD_PARAMETER)
    mailbox = str(fields.get("userid", ""))
    # `simulate` without --tenants knows every address (no mail yet), as its legacy side
    # does: the shipped config's `watch` list polls without a warning.
    open_mode = request.app[STATE].settings.any_mailbox
    if mailbox not in _mailboxes(corp) and not open_mode:
        return errcode_answer(NO_USER)
    return ok(count=corp.unread.get(mailbox, 0))


def _departments_of(user: dict[str, Any]) -> list[int]:
    return [int(d) for d in user.get("department") or ()] or [ROOT_DEPARTMENT]


def _department_list(request: web.Request, corp: ApiCorp, fields: dict[str, Any]) -> web.Response:
    found = {d for user in corp.users.values() for d in _departments_of(user)} - {1}
    root = {"id": ROOT_DEPARTMENT, "name": corp.corp_id, "parentid": 0, "order": 0}
    departments = [
        root,
        *({"id": d, "name": f"dept-{d}", "parentid": 1, "order": d} for d in sorted(found)),
    ]
    wanted = str(fields.get("id") or ROOT_DEPARTMENT)
    if wanted != str(ROOT_DEPARTMENT):
        departments = [d for d in departments if str(d["id"]) == wanted]
    return ok(department=departments)


def _simplelist(request: web.Request, corp: ApiCorp, fields: dict[str, Any]) -> web.Response:
    raw = str(fields.get("department_id", ""))
    if not raw.isdigit():
        return errcode_answer(BAD_PARAMETER)
    department, children = int(raw), str(fields.get("fetch_child", "0")) == "1"
    everyone = department == ROOT_DEPARTMENT and children  # all departments hang off the root
    members = [
        {
            "userid": mailbox,
            "name": str(user.get("name") or ""),
            "department": _departments_of(user),
        }
        for mailbox, user in corp.users.items()
        if everyone or department in _departments_of(user)
    ]
    return ok(userlist=members)


def _get_newcount(request: web.Request, corp: ApiCorp, fields: dict[str, Any]) -> web.Response:
    userid = str(fields.get("userid", ""))
    mailbox = next((m for m in _mailboxes(corp) if wecom_userid(corp, m) == userid), None)
    if mailbox is None:
        return errcode_answer(NO_MEMBER)
    return ok(count=corp.unread.get(mailbox, 0))


def _userid_by_email(request: web.Request, corp: ApiCorp, fields: dict[str, Any]) -> web.Response:
    email = str(fields.get("email", "")).lower()
    mailbox = next((m for m in _mailboxes(corp) if m.lower() == email), None)
    if mailbox is None:
        return errcode_answer(NO_MEMBER)
    return ok(userid=wecom_userid(corp, mailbox))


async def _users(request: web.Request) -> web.StreamResponse:
    """Control: add, modify or remove a member of a corp's directory."""
    try:
        body = orjson.loads(await request.read() or b"{}")
        corp = request.app[NEWAPI].corp(str(body["tenant"]))
        if corp is None:
            raise KeyError(f"unknown corp {body['tenant']}")
        _change_user(corp, body)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
    return web.json_response({"users": sorted(corp.users)})


def _change_user(corp: ApiCorp, body: dict[str, Any]) -> None:
    userid, action = str(body["userid"]), body.get("action", "add")
    if action == "remove":
        corp.users.pop(userid, None)
        return
    if action not in ("add", "modify"):
        raise ValueError("action must be add, modify or remove")
    fields: dict[str, object] = {
        k: body[k] for k in ("name", "department", "wecom_userid") if k in body
    }
    corp.users.setdefault(userid, {"name": userid.split("@")[0]}).update(fields)


def newapi_read_routes() -> list[web.RouteDef]:
    """The routes above (the token and SSO endpoints live in exmail_newapi_http)."""
    return [
        web.route("*", "/cgi-bin/mail/newcount", _handler("mail/newcount", _newcount)),
        web.get("/cgi-bin/department/list", _handler("department/list", _department_list)),
        web.get("/cgi-bin/user/simplelist", _handler("user/simplelist", _simplelist)),
        web.post(
            "/cgi-bin/exmail/mail/get_newcount",
            _handler("exmail/mail/get_newcount", _get_newcount),
        ),
        web.post(
            "/cgi-bin/user/get_userid_by_email",
            _handler("user/get_userid_by_email", _userid_by_email),
        ),
        web.post("/_sim/api/users", _users),
    ]
