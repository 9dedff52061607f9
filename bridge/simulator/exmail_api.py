"""The simulated Exmail OpenAPI: token, read endpoints and the SSO login page."""

from __future__ import annotations

import base64
import binascii
import html

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.simulator.exmail_faults import Faults
from bridge.simulator.exmail_state import ExmailSimState, SimTenant, UnknownTenant
from bridge.simulator.exmail_wire import Answer, error_body, inject, json_answer, write_json

__all__ = ["STATE", "prelude", "routes"]

STATE = web.AppKey("exmail_sim_state", ExmailSimState)


async def form_of(request: web.Request) -> dict[str, str]:
    """Query and form fields together (the form wins)."""
    fields = {k: v for k, v in request.query.items()}
    if request.can_read_body:
        posted = await request.post()
        fields.update({k: v for k, v in posted.items() if isinstance(v, str)})
    return fields


def _bearer(request: web.Request, form: dict[str, str]) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return form.get("access_token", "")


async def prelude(request: web.Request, endpoint: str) -> tuple[SimTenant, dict[str, str], Faults]:
    """Authenticate an API call and apply its faults: (tenant, form, faults)."""
    state = request.app[STATE]
    form = await form_of(request)
    tenant = state.tenant_of_token(_bearer(request, form))
    if tenant is None:
        raise json_answer(error_body("1200", "invalid_token"))
    faults = state.faults_for(tenant, endpoint)
    await inject(request, state, tenant, faults)
    return tenant, form, faults


# -- token -------------------------------------------------------------------------------------


def _credentials(request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


async def token(request: web.Request) -> web.StreamResponse:
    """`/cgi-bin/token`: client credentials (form fields or Basic auth) for a Bearer token."""
    state = request.app[STATE]
    form = await form_of(request)
    client_id, secret = _credentials(request, form)
    state.token_requests[client_id] += 1
    tenant = state.tenants.get(client_id)
    await inject(request, state, None, state.faults_for(tenant, "token"))
    if form.get("grant_type") != "client_credentials":
        raise json_answer({"error": "unsupported_grant_type"}, status=400)
    if not state.check_credentials(client_id, secret):
        raise json_answer({"error": "invalid_client"}, status=401)
    value, expires_in_s = state.issue_token(client_id)
    return web.json_response(
        {
            "access_token": value,
            "token_type": "Bearer",
            "expires_in": expires_in_s,
            "refresh_token": "",
        }
    )


# -- read endpoints -----------------------------------------------------------------------------


def _known(tenant: SimTenant, form: dict[str, str], code: str, name: str) -> str:
    alias = form.get("alias") or form.get("Alias") or ""
    if not tenant.knows(alias):
        raise json_answer(error_body(code, name))
    return alias


async def user_list(request: web.Request) -> web.StreamResponse:
    """`/openapi/user/list`: directory changes after `Ver`."""
    tenant, form, faults = await prelude(request, "user/list")
    raw = form.get("Ver") or form.get("ver") or "0"
    since = int(raw) if raw.isdigit() else 0
    items = request.app[STATE].delta(tenant, since)
    return await write_json(
        request, {"Ver": tenant.ver, "Count": len(items), "List": items}, faults
    )


async def user_get(request: web.Request) -> web.StreamResponse:
    """`/openapi/user/get`: one account."""
    tenant, form, faults = await prelude(request, "user/get")
    alias = form.get("alias") or form.get("Alias") or ""
    if alias not in tenant.users:
        raise json_answer(error_body("1301", "user_not_found"))
    user = tenant.users[alias]
    parties = list(user.get("PartyList", []))
    body = {
        "Alias": alias,
        "Name": user.get("Name", ""),
        "Gender": user.get("Gender", 0),
        "SlaveList": ",".join(user.get("SlaveList", [])),
        "Position": user.get("Position", ""),
        "Tel": user.get("Tel", ""),
        "Mobile": user.get("Mobile", ""),
        "ExtId": user.get("ExtId", ""),
        "PartyList": {"Count": len(parties), "List": [{"Value": p} for p in parties]},
        "OpenType": user.get("OpenType", 1),
    }
    return await write_json(request, body, faults)


async def newcount(request: web.Request) -> web.StreamResponse:
    """`/openapi/mail/newcount`: a mailbox's unread count (1400 if there is no such box)."""
    tenant, form, faults = await prelude(request, "mail/newcount")
    if request.app[STATE].settings_for(tenant).any_mailbox:
        alias = form.get("alias") or form.get("Alias") or ""
    else:
        alias = _known(tenant, form, "1400", "account_not_found")
    return await write_json(
        request, {"Alias": alias, "NewCount": tenant.unread.get(alias, 0)}, faults
    )


async def authkey(request: web.Request) -> web.StreamResponse:
    """`/openapi/mail/authkey`: a one-time login key."""
    tenant, form, faults = await prelude(request, "mail/authkey")
    alias = form.get("alias") or form.get("Alias") or ""
    if not alias:
        raise json_answer(error_body("1301", "user_not_found"))
    state = request.app[STATE]
    field = state.settings_for(tenant).authkey_field
    return await write_json(request, {field: state.new_auth_key(tenant, alias)}, faults)


async def login(request: web.Request) -> web.StreamResponse:
    """`/cgi-bin/login`: the SSO page; 200 for a valid unused key, 403 otherwise."""
    q = request.query
    ok = q.get("fun") == "bizopenssologin" and q.get("method") == "bizauth"
    user = q.get("user", "")
    if ok and request.app[STATE].use_auth_key(q.get("agent", ""), user, q.get("ticket", "")):
        mail_id = q.get("mailid", "")
        opened = f"; opened mail {html.escape(mail_id)}" if mail_id else ""
        text = f"<html><body>logged in as {html.escape(user)}{opened}</body></html>"
        return web.Response(text=text, content_type="text/html")
    return web.Response(
        text="<html><body>login refused</body></html>", status=403, content_type="text/html"
    )


@web.middleware
async def answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn `Answer` (and unknown tenants) into responses."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Answer as answer:
        return answer.response
    except UnknownTenant:
        return web.json_response({"error": "unknown tenant"}, status=404)


def routes() -> list[web.RouteDef]:
    """The OpenAPI routes (listen is added by the app factory)."""
    return [
        web.route("*", "/cgi-bin/token", token),
        web.get("/cgi-bin/login", login),
        web.post("/openapi/user/list", user_list),
        web.post("/openapi/user/get", user_get),
        web.post("/openapi/mail/newcount", newcount),
        web.post("/openapi/mail/authkey", authkey),
    ]
