"""The subscription API's HTTP edges: JSON in with limits, JSON and RFC 9457 problems out."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bridge.delivery.subscription_model import id_time
from bridge.errors import ApiError

__all__ = [
    "PROBLEM_TYPE",
    "first_error",
    "json_response",
    "parse_body",
    "problem_response",
    "query_cursor",
    "query_int",
]

PROBLEM_TYPE = "application/problem+json"
_M = TypeVar("_M", bound=BaseModel)


def problem_response(error: ApiError) -> web.Response:
    """The error as `application/problem+json`."""
    body = {"type": "about:blank", "title": error.title, "status": error.status}
    body["detail"] = error.detail
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="exmail-bridge"'
    return web.Response(
        status=error.status,
        body=orjson.dumps(body),
        headers={**headers, "Content-Type": PROBLEM_TYPE},
    )


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """A model as `application/json`."""
    return web.Response(
        status=status, body=model.model_dump_json().encode(), content_type="application/json"
    )


async def _read(request: web.Request, max_bytes: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise ApiError(413, "Content Too Large", f"the body is larger than {max_bytes} bytes")
    body = await request.content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ApiError(413, "Content Too Large", f"the body is larger than {max_bytes} bytes")
    return body


def first_error(exc: ValidationError) -> str:
    """The first validation error as one line: `field: reason`."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    kind = err.get("type", "")
    if kind == "missing":
        return f"{where}: required"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}"


async def parse_body(request: web.Request, model: type[_M], max_bytes: int) -> _M:
    """The request's JSON body as `model`; ApiError 413/415/400/422 naming the culprit."""
    raw = await _read(request, max_bytes)
    if not raw.strip():
        raw = b"{}"
    elif request.content_type not in {"application/json", "application/merge-patch+json"}:
        raise ApiError(415, "Unsupported Media Type", "send the body as application/json")
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Bad Request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "Unprocessable Content", "body: must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "Unprocessable Content", first_error(exc)) from None


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; ApiError 400 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, "Bad Request", f"{name}: must be an integer from {low} to {high}")
    return int(raw)


def query_cursor(request: web.Request, prefix: str) -> str | None:
    """The `cursor` query parameter, an id of `prefix`; ApiError 400 when it is not one."""
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        if not raw.startswith(f"{prefix}_"):
            raise ValueError(raw)
        id_time(raw)
    except ValueError:
        raise ApiError(400, "Bad Request", "cursor: not a cursor this API returned") from None
    return raw
