"""`/openapi/listen`: the held long poll, in the three framings the real service may use.

- `single`: one object per response, then the response ends;
- `ndjson`: a held chunked response carrying objects separated by newlines until the hold ends;
- `concat`: the same with objects simply concatenated.

A push taken from the queue goes back to its head unless it was fully written, so a
connection that fails (or a client that goes away) never loses one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bridge.simulator.exmail_api import STATE, prelude
from bridge.simulator.exmail_faults import Faults, SimSettings
from bridge.simulator.exmail_state import ExmailSimState, SimTenant
from bridge.simulator.exmail_wire import GARBAGE, abort, encode, padded

__all__ = ["listen"]

_HEARTBEAT = {"Ret": 0}


class _Dropped(Exception):
    """The connection was cut on purpose (the `reset` fault)."""


async def listen(request: web.Request) -> web.StreamResponse:
    """Hold the request until pushes arrive or the hold ends."""
    state = request.app[STATE]
    tenant, form, faults = await prelude(request, "listen")
    ver = form.get("Ver") or form.get("ver") or "0"
    state.listen_requests[tenant.client_id] += 1
    tenant.listen_vers.append(ver)
    settings = state.settings_for(tenant)
    _offer_version(tenant, ver, settings)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    tenant.listens_connected += 1
    try:
        await resp.prepare(request)
        if faults.invalid_json:
            await resp.write(GARBAGE + b"\n")
        await _answer(request, resp, state, tenant, faults)
        await resp.write_eof()
    except _Dropped:
        pass
    finally:
        tenant.listens_connected -= 1
    return resp


async def _answer(
    request: web.Request,
    resp: web.StreamResponse,
    state: ExmailSimState,
    tenant: SimTenant,
    faults: Faults,
) -> None:
    settings = state.settings_for(tenant)
    if faults.oversized_bytes:
        for chunk in padded(_HEARTBEAT, faults):
            await resp.write(chunk)
        return
    deadline = asyncio.get_running_loop().time() + settings.hold_s
    sep = b"\n" if settings.framing == "ndjson" else b""
    sent = False
    while await _wait(state, tenant, deadline):
        pending = [tenant.queue.popleft()]
        if settings.framing != "single":
            pending.extend(tenant.queue)
            tenant.queue.clear()
        if settings.one_write and not faults.any():
            await _send_together(resp, tenant, pending, faults, sep)
        else:
            await _send(request, resp, tenant, pending, faults, sep)
        sent = True
        if settings.framing == "single":
            return
    if not sent and settings.heartbeat == "ret":
        await resp.write(encode(_HEARTBEAT, faults) + sep)


async def _send(
    request: web.Request,
    resp: web.StreamResponse,
    tenant: SimTenant,
    pending: list[dict[str, Any]],
    faults: Faults,
    sep: bytes,
) -> None:
    """Write pushes one by one; whatever was not fully written goes back to the queue."""
    try:
        while pending:
            data = encode(pending[0], faults) + sep
            if faults.reset:
                await resp.write(data[: len(data) // 2])
                abort(request)
                raise _Dropped
            await resp.write(data)
            pending.pop(0)
    finally:
        tenant.requeue(pending)


async def _send_together(
    resp: web.StreamResponse,
    tenant: SimTenant,
    pending: list[dict[str, Any]],
    faults: Faults,
    sep: bytes,
) -> None:
    """Write every push in one write; if it fails, they all go back to the queue."""
    try:
        await resp.write(b"".join(encode(push, faults) + sep for push in pending))
        pending.clear()
    finally:
        tenant.requeue(pending)


async def _wait(state: ExmailSimState, tenant: SimTenant, deadline: float) -> bool:
    """Wait (without polling) until the tenant has a push; False when the hold is over."""
    loop = asyncio.get_running_loop()
    while not tenant.queue and not state.closing.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        tenant.wakeup.clear()
        try:
            async with asyncio.timeout(remaining):
                await tenant.wakeup.wait()
        except TimeoutError:
            break
    return bool(tenant.queue) and not state.closing.is_set()


def _offer_version(tenant: SimTenant, ver: str, settings: SimSettings) -> None:
    """A listener behind the directory's version hears the current one first."""
    behind = not ver.isdigit() or int(ver) < tenant.ver
    queued = any("Ver" in push for push in tenant.queue)
    if settings.ver_on_listen and tenant.ver and behind and not queued:
        tenant.enqueue({"Ver": str(tenant.ver)}, front=True)
