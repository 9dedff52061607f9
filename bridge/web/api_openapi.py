"""The OpenAPI 3.1 document of `/v1/`, its schemas generated from `api_models`.

`tests/web/test_api_schemathesis.py` runs schemathesis against the live server with this
document, so a handler that answers something the document does not say fails the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bridge import __version__
from bridge.web import api_models as m

__all__ = ["PATHS", "openapi_document"]

_REF = "#/components/schemas/{model}"
_IN = (m.SubscriptionIn, m.SubscriptionPatch, m.RotateIn, m.RecoverIn, m.TokenIn)
_OUT = (
    m.SubscriptionOut,
    m.SubscriptionCreated,
    m.SubscriptionList,
    m.SecretOut,
    m.TestOut,
    m.AttemptList,
    m.ResendOut,
    m.JobOut,
    m.TokenCreated,
    m.TokenList,
    m.Problem,
)
_SUB_ID: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^sub_[0-9a-v]{26}$"},
}
_TOKEN_ID: dict[str, Any] = {
    "name": "token_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^tok_[0-9a-v]{26}$"},
}
_CURSOR: dict[str, Any] = {"name": "cursor", "in": "query", "schema": {"type": "string"}}
_LIMIT: dict[str, Any] = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _op(
    summary: str,
    ok: tuple[int, type[BaseModel] | None],
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    status, model = ok
    success: dict[str, Any] = {"description": summary}
    if model is not None:
        success["content"] = {"application/json": {"schema": _ref(model)}}
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": params or [],
        "responses": {
            str(status): success,
            "default": {
                "description": "a problem (RFC 9457)",
                "content": {"application/problem+json": {"schema": _ref(m.Problem)}},
            },
        },
    }
    if body is not None:
        op["requestBody"] = _body(body, body_required)
    return op


def _paths() -> dict[str, Any]:
    sub = [_SUB_ID]
    attempts: list[dict[str, Any]] = [
        _SUB_ID,
        {"name": "status", "in": "query", "schema": {"enum": ["succeeded", "failed"]}},
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        _CURSOR,
        _LIMIT,
    ]
    event = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
    s = "/v1/subscriptions/{id}"
    return {
        "/v1/subscriptions": {
            "post": _op(
                "Create a subscription", (201, m.SubscriptionCreated), body=m.SubscriptionIn
            ),
            "get": _op("List subscriptions", (200, m.SubscriptionList), params=[_CURSOR, _LIMIT]),
        },
        s: {
            "get": _op("Get a subscription", (200, m.SubscriptionOut), params=sub),
            "patch": _op(
                "Change a subscription",
                (200, m.SubscriptionOut),
                body=m.SubscriptionPatch,
                params=sub,
            ),
            "delete": _op(
                "Delete a subscription and its pending deliveries", (204, None), params=sub
            ),
        },
        f"{s}/disable": {"post": _op("Disable", (200, m.SubscriptionOut), params=sub)},
        f"{s}/enable": {"post": _op("Enable", (200, m.SubscriptionOut), params=sub)},
        f"{s}/secret/rotate": {
            "post": _op(
                "Rotate the signing secret",
                (200, m.SecretOut),
                body=m.RotateIn,
                params=sub,
                body_required=False,
            )
        },
        f"{s}/test": {"post": _op("Send a signed exmail.ping", (200, m.TestOut), params=sub)},
        f"{s}/attempts": {"get": _op("List attempts", (200, m.AttemptList), params=attempts)},
        f"{s}/resend/{{event_id}}": {
            "post": _op("Resend one event", (202, m.ResendOut), params=[_SUB_ID, event])
        },
        f"{s}/recover": {
            "post": _op(
                "Resend what failed in a window", (202, m.JobOut), body=m.RecoverIn, params=sub
            )
        },
        "/v1/tokens": {
            "post": _op("Create a scoped token (admin)", (201, m.TokenCreated), body=m.TokenIn),
            "get": _op(
                "List scoped tokens, without their values (admin)",
                (200, m.TokenList),
                params=[_CURSOR, _LIMIT],
            ),
        },
        "/v1/tokens/{token_id}": {
            "delete": _op(
                "Revoke a scoped token: refused from its next request on (admin)",
                (204, None),
                params=[_TOKEN_ID],
            )
        },
    }


def _schemas() -> dict[str, Any]:
    pairs = [(model, "validation") for model in _IN] + [(model, "serialization") for model in _OUT]
    _, top = models_json_schema(pairs, ref_template=_REF)  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "exmail-bridge subscriptions",
            "version": __version__,
            "description": "Webhook subscriptions to Tencent Exmail events (Standard Webhooks).",
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@dataclass(frozen=True, slots=True)
class _PathTable:
    patterns: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]

    def allowed(self, path: str) -> tuple[str, ...]:
        """The methods a documented path allows (empty when the path is not documented)."""
        for pattern, methods in self.patterns:
            if pattern.fullmatch(path):
                return methods
        return ()


def _table() -> _PathTable:
    rows = []
    for template, ops in _paths().items():
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        rows.append((re.compile(regex), tuple(sorted(k.upper() for k in ops))))
    return _PathTable(tuple(rows))


PATHS = _table()
