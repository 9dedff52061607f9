"""How the Exmail simulator puts bytes on the wire, faults included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.exmail_faults import Faults
from bridge.simulator.exmail_state import ExmailSimState, SimTenant

__all__ = ["Answer", "encode", "error_body", "inject", "json_answer", "write_json"]

GARBAGE = b"<html>502 Bad Gateway</html>"
_PAD_CHUNK = 64 * 1024


class Answer(Exception):
    """Raised by a handler to answer at once with `response` (see the app's middleware)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("answer")
        self.response = response


def error_body(code: str, name: str) -> dict[str, str]:
    """Exmail's error shape: errcode is a string."""
    return {"errcode": code, "error": name}


def json_answer(obj: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    """An `Answer` carrying a JSON body."""
    return Answer(
        web.Response(
            body=orjson.dumps(obj), status=status, content_type="application/json", headers=headers
        )
    )


def encode(obj: dict[str, Any], faults: Faults) -> bytes:
    """One JSON object, with the type drift and trailing commas the faults ask for."""
    if faults.string_numbers is not None:
        obj = {k: _drift(k, v, as_string=faults.string_numbers) for k, v in obj.items()}
    data = orjson.dumps(obj)
    if faults.trailing_commas and obj:
        data = data[:-1] + b",}"
    return data


def _drift(key: str, value: Any, *, as_string: bool) -> Any:
    if key not in ("Ver", "NewCount"):
        return value
    return str(value) if as_string else int(value)


def padded(obj: dict[str, Any], faults: Faults) -> Iterator[bytes]:
    """`obj` with a leading `Padding` string that makes it `oversized_bytes` long, in chunks."""
    yield b'{"Padding":"'
    left = faults.oversized_bytes
    while left > 0:
        step = min(left, _PAD_CHUNK)
        yield b"x" * step
        left -= step
    rest = encode(obj, faults)[1:]
    yield b'"' + (b"," + rest if rest != b"}" else rest)


async def inject(
    request: web.Request, state: ExmailSimState, tenant: SimTenant | None, faults: Faults
) -> None:
    """Apply the request-level faults: latency, silence, 429, 5xx, 1002, 1200."""
    if faults.latency_s > 0:
        await asyncio.sleep(faults.latency_s)
    if faults.silent:
        await state.closing.wait()  # until the client gives up (handler cancelled) or shutdown
        raise Answer(web.Response(status=503))
    retry = {"Retry-After": str(faults.retry_after_s)}
    if faults.roll(faults.http_429):
        raise json_answer(error_body("429", "too_many_requests"), status=429, headers=retry)
    if faults.roll(faults.http_5xx):
        raise Answer(web.Response(status=503, text="service unavailable", headers=retry))
    if faults.roll(faults.err_1002):
        raise json_answer(error_body("1002", "temporarily_unavailable"))
    if tenant is not None and faults.roll(faults.err_1200):
        state.revoke_tokens(tenant.client_id)
        raise json_answer(error_body("1200", "invalid_token"))


async def write_json(
    request: web.Request, obj: dict[str, Any], faults: Faults
) -> web.StreamResponse:
    """Answer one JSON object, with the body-level faults (garbage, oversize, reset)."""
    if faults.invalid_json:
        return web.Response(body=GARBAGE, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    if faults.oversized_bytes:
        await resp.prepare(request)  # chunked: the client must count, not trust a length
        for chunk in padded(obj, faults):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    body = encode(obj, faults)
    resp.content_length = len(body)
    await resp.prepare(request)
    if faults.reset:
        await resp.write(body[: len(body) // 2])
        abort(request)
        return resp
    await resp.write(body)
    await resp.write_eof()
    return resp


def abort(request: web.Request) -> None:
    """Drop the connection now, mid-response."""
    if request.transport is not None:
        request.transport.abort()
