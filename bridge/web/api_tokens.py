"""`/v1/tokens`: scoped API tokens, admin only (`SubscriptionApi` checks that).

The list shows what a token is for (id, tenants, description, created_at), never its
value or its hash: the value is shown once, when made, and nowhere else. A revocation is
logged here, `api_token_revoked` with the id only (the CLI prints its own line instead:
its stdout is its answer).
"""

from __future__ import annotations

from aiohttp import web

from bridge.delivery.subscription_model import ApiToken, rfc3339
from bridge.delivery.subscription_service import Principal, SubscriptionService
from bridge.logs import get_logger
from bridge.web import api_models as m
from bridge.web.api_http import json_response, parse_body, query_cursor, query_int

__all__ = ["TokenHandlers", "token_out"]

log = get_logger(__name__)


def token_out(token: ApiToken) -> m.TokenOut:
    """The public view of a token (no value, no hash)."""
    return m.TokenOut(
        id=token.id,
        tenants=list(token.tenants),
        description=token.description,
        created_at=rfc3339(token.created_at),
    )


class TokenHandlers:
    """Create, list and revoke scoped tokens."""

    def __init__(self, *, service: SubscriptionService) -> None:
        self._service = service
        self._max_body = service.settings.max_body_bytes

    async def create(self, request: web.Request, _: Principal) -> web.Response:
        """`POST /v1/tokens`: 201 with the token, shown only this once."""
        body = await parse_body(request, m.TokenIn, self._max_body)
        token, value = await self._service.create_token(body.tenants, body.description)
        created = m.TokenCreated(**token_out(token).model_dump(), token=value)
        return json_response(created, 201)

    async def listing(self, request: web.Request, _: Principal) -> web.Response:
        """`GET /v1/tokens`: one page of tokens, by id."""
        limit = query_int(request, "limit", 50, 1, 100)
        cursor = query_cursor(request, "tok")
        tokens = [t for t in await self._service.list_tokens() if cursor is None or t.id > cursor]
        page = tokens[:limit]
        next_cursor = page[-1].id if len(tokens) > limit else None
        return json_response(
            m.TokenList(data=[token_out(t) for t in page], next_cursor=next_cursor)
        )

    async def revoke(self, request: web.Request, _: Principal) -> web.Response:
        """`DELETE /v1/tokens/{token_id}`: 204, or 404 when there is no such token."""
        token_id = request.match_info["token_id"]
        await self._service.revoke_token(token_id)
        log.info("api_token_revoked", id=token_id)
        return web.Response(status=204)
