"""`/v1/`: the subscription API, a `PublicFace` on the public listener.

Every endpoint authenticates (`api_auth`), spends the token's rate budget, and answers
errors as RFC 9457 problems naming the culprit. The OpenAPI 3.1 document is served at
`/v1/openapi.json` without a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web

from bridge.delivery.subscription_model import Subscription, parse_rfc3339, rfc3339
from bridge.delivery.subscription_replay import Replays, window_end
from bridge.delivery.subscription_service import Principal, SubscriptionService, SubscriptionSpec
from bridge.errors import ApiError, StoreError
from bridge.logs import get_logger
from bridge.web import api_models as m
from bridge.web.api_auth import Authenticator, RateLimits
from bridge.web.api_http import (
    json_response,
    parse_body,
    problem_response,
    query_cursor,
    query_int,
)
from bridge.web.api_openapi import PATHS, openapi_document
from bridge.web.api_tokens import TokenHandlers

__all__ = ["SubscriptionApi", "spec_of", "sub_out"]

log = get_logger(__name__)
Handler = Callable[[web.Request, Principal], Awaitable[web.Response]]


def sub_out(sub: Subscription) -> m.SubscriptionOut:
    """The public view of a subscription (no secrets)."""
    return m.SubscriptionOut(
        id=sub.id,
        url=sub.url,
        event_types=list(sub.event_types),
        tenants=list(sub.tenants),
        mailboxes=list(sub.mailboxes),
        description=sub.description,
        metadata=dict(sub.metadata),
        scope=None if sub.scope is None else list(sub.scope),
        disabled=sub.disabled,
        disabled_reason=sub.disabled_reason,
        created_at=rfc3339(sub.created_at),
        updated_at=rfc3339(sub.updated_at),
    )


def spec_of(body: m.SubscriptionIn | m.SubscriptionPatch) -> SubscriptionSpec:
    return SubscriptionSpec(
        url=body.url,
        event_types=body.event_types,
        tenants=body.tenants,
        mailboxes=body.mailboxes,
        description=body.description,
        metadata=body.metadata,
    )


def _time_query(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise ApiError(400, "Bad Request", f"{name}: must be an RFC 3339 time") from None


class SubscriptionApi:
    """The `/v1/` routes."""

    def __init__(
        self,
        *,
        service: SubscriptionService,
        replays: Replays,
        auth: Authenticator,
        limits: RateLimits,
    ) -> None:
        self._service = service
        self._replays = replays
        self._auth = auth
        self._limits = limits
        self._max_body = service.settings.max_body_bytes
        self._jobs: set[asyncio.Task[int]] = set()
        self._openapi = orjson.dumps(openapi_document())
        self._tokens = TokenHandlers(service=service)

    def routes(self) -> Sequence[web.RouteDef]:
        """Every `/v1/` route, then a catch-all answering 404 or 405 as problems."""
        e, sub = self._endpoint, "/v1/subscriptions/{id}"
        return [
            web.get("/v1/openapi.json", self._openapi_json, allow_head=False),
            web.post("/v1/subscriptions", e(self._create)),
            web.get("/v1/subscriptions", e(self._list), allow_head=False),
            web.get(sub, e(self._get), allow_head=False),
            web.patch(sub, e(self._patch)),
            web.delete(sub, e(self._delete)),
            web.post(f"{sub}/disable", e(self._disable)),
            web.post(f"{sub}/enable", e(self._enable)),
            web.post(f"{sub}/secret/rotate", e(self._rotate)),
            web.post(f"{sub}/test", e(self._test)),
            web.get(f"{sub}/attempts", e(self._attempts), allow_head=False),
            web.post(f"{sub}/resend/{{event_id}}", e(self._resend)),
            web.post(f"{sub}/recover", e(self._recover)),
            web.post("/v1/tokens", e(self._tokens.create, admin_only=True)),
            web.get("/v1/tokens", e(self._tokens.listing, admin_only=True), allow_head=False),
            web.delete("/v1/tokens/{token_id}", e(self._tokens.revoke, admin_only=True)),
            web.route("*", "/v1/{tail:.*}", self._unknown),
        ]

    def _endpoint(
        self, handler: Handler, *, admin_only: bool = False
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            try:
                who = await self._auth.principal(request)
                self._limits.take(who.token_id)
                if admin_only and not who.admin:
                    raise ApiError(403, "Forbidden", "this endpoint needs an admin token")
                return await handler(request, who)
            except ApiError as exc:
                return problem_response(exc)
            except StoreError as exc:
                log.error("api_store_failed", path=request.path, error=str(exc))
                unavailable = ApiError(
                    503, "Service Unavailable", "the store did not answer", retry_after_s=1
                )
                return problem_response(unavailable)

        return endpoint

    async def _openapi_json(self, _: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def _unknown(self, request: web.Request) -> web.Response:
        allowed = PATHS.allowed(request.path)
        if allowed:
            error = ApiError(405, "Method Not Allowed", f"{request.method} is not allowed here")
            response = problem_response(error)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return problem_response(ApiError(404, "Not Found", f"no endpoint {request.path}"))

    async def _create(self, request: web.Request, who: Principal) -> web.Response:
        body = await parse_body(request, m.SubscriptionIn, self._max_body)
        sub, secret = await self._service.create(who, spec_of(body), body.secret)
        created = m.SubscriptionCreated(**sub_out(sub).model_dump(), secret=secret)
        return json_response(created, 201)

    async def _list(self, request: web.Request, who: Principal) -> web.Response:
        limit = query_int(request, "limit", 50, 1, 100)
        cursor = query_cursor(request, "sub")
        subs = [s for s in await self._service.visible(who) if cursor is None or s.id > cursor]
        page = subs[:limit]
        next_cursor = page[-1].id if len(subs) > limit else None
        listing = m.SubscriptionList(data=[sub_out(s) for s in page], next_cursor=next_cursor)
        return json_response(listing)

    async def _get(self, request: web.Request, who: Principal) -> web.Response:
        return json_response(sub_out(await self._service.get(who, request.match_info["id"])))

    async def _patch(self, request: web.Request, who: Principal) -> web.Response:
        body = await parse_body(request, m.SubscriptionPatch, self._max_body)
        sub = await self._service.update(who, request.match_info["id"], spec_of(body))
        return json_response(sub_out(sub))

    async def _delete(self, request: web.Request, who: Principal) -> web.Response:
        await self._service.delete(who, request.match_info["id"])
        return web.Response(status=204)

    async def _disable(self, request: web.Request, who: Principal) -> web.Response:
        sub = await self._service.set_disabled(who, request.match_info["id"], True)
        return json_response(sub_out(sub))

    async def _enable(self, request: web.Request, who: Principal) -> web.Response:
        sub = await self._service.set_disabled(who, request.match_info["id"], False)
        return json_response(sub_out(sub))

    async def _rotate(self, request: web.Request, who: Principal) -> web.Response:
        body = await parse_body(request, m.RotateIn, self._max_body)
        secret, old_until = await self._service.rotate(
            who, request.match_info["id"], body.grace_s, body.secret
        )
        expires = None if old_until is None else rfc3339(old_until)
        return json_response(m.SecretOut(secret=secret, old_secret_expires_at=expires))

    async def _test(self, request: web.Request, who: Principal) -> web.Response:
        event, outcome = await self._replays.test(who, request.match_info["id"])
        result = m.TestOut(
            event_id=event.id,
            ok=outcome.ok,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
        )
        return json_response(result)

    async def _attempts(self, request: web.Request, who: Principal) -> web.Response:
        status = request.query.get("status")
        if status not in {None, "succeeded", "failed"}:
            raise ApiError(400, "Bad Request", "status: must be succeeded or failed")
        await self._replays.flush_attempts()
        found, next_cursor = await self._service.attempts(
            who,
            request.match_info["id"],
            status="failed" if status == "failed" else "succeeded" if status else None,
            since=_time_query(request, "since"),
            until=_time_query(request, "until"),
            cursor=query_cursor(request, "att"),
            limit=query_int(request, "limit", 50, 1, 100),
        )
        data = [
            m.AttemptOut(
                id=a.id,
                event_id=a.event_id,
                event_type=a.event_type,
                at=rfc3339(a.at),
                status=a.status,
                status_code=a.status_code,
                duration_ms=a.duration_ms,
                error=a.error,
                trigger=a.trigger,
            )
            for a in found
        ]
        return json_response(m.AttemptList(data=data, next_cursor=next_cursor))

    async def _resend(self, request: web.Request, who: Principal) -> web.Response:
        event_id = request.match_info["event_id"]
        await self._replays.resend(who, request.match_info["id"], event_id)
        return json_response(m.ResendOut(event_id=event_id, status="queued"), 202)

    async def _recover(self, request: web.Request, who: Principal) -> web.Response:
        body = await parse_body(request, m.RecoverIn, self._max_body)
        since = body.since.timestamp()
        until = window_end(None if body.until is None else body.until.timestamp())
        job_id, sub = await self._replays.start_recover(who, request.match_info["id"], since, until)
        task = asyncio.create_task(
            self._replays.recover(job_id, sub, since, until), name=f"recover[{job_id}]"
        )
        self._jobs.add(task)
        task.add_done_callback(self._job_done)
        job = m.JobOut(id=job_id, status="running", since=rfc3339(since), until=rfc3339(until))
        return json_response(job, 202)

    def _job_done(self, task: asyncio.Task[int]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "subscription_recover_failed", job=task.get_name(), error=str(task.exception())
            )

    async def aclose(self) -> None:
        """Cancel recovery jobs still running (they are safe to run again)."""
        for task in list(self._jobs):
            task.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
