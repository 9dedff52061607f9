"""The callback receiver: `GET`/`POST /exmail/callback/{tenant}` on the public listener.

GET is Tencent's URL check: answer the decrypted `echostr` as plain text. POST carries one
encrypted message: verify it (bridge/exmail_api/callback_verify.py), then refuse a replay
and commit its event durably (bridge/exmail_api/callback_batch.py), and only then answer
200 with an empty body. Refusals commit nothing and answer 401 (signature) or 403 (corp,
stale, replay, oversized, malformed), the reason in the log line and the metric label. A
store that is down, or a commit slower than ANSWER_WITHIN_S, answers 503, so Tencent sends
the callback again (and the event id makes the second copy a duplicate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from aiohttp import web

from bridge import metrics
from bridge.config import TenantConfig
from bridge.errors import CallbackRefused, StoreError
from bridge.exmail_api.callback_batch import GroupCommit
from bridge.exmail_api.callback_verify import Verifier
from bridge.logs import get_logger
from bridge.sources.commit import Committer

__all__ = ["ANSWER_WITHIN_S", "MAX_BODY_BYTES", "MAX_NAME_CHARS", "CallbackReceiver"]

log = get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024
MAX_NAME_CHARS = 64  # an unknown tenant name from the path is logged cut to this
# Tencent drops the connection after 5 s and sends again. A commit still running by then
# finishes in the background (it is shielded); the retry is then a duplicate, deduplicated.
ANSWER_WITHIN_S = 3.0
PATH = "/exmail/callback/{tenant}"
_STATUS = {"signature": 401}  # every other refusal is 403


class _Tenant:
    """One callback tenant's verifier and group commit."""

    def __init__(self, verifier: Verifier, group: GroupCommit) -> None:
        self.verifier = verifier
        self.group = group
        self.config = verifier.tenant


class CallbackReceiver:
    """A public face: the callback routes of every tenant in callback mode."""

    def __init__(
        self,
        *,
        tenants: Iterable[TenantConfig],
        committer_for: Callable[[TenantConfig], Committer],
        verifier_for: Callable[[TenantConfig], Verifier] = lambda t: Verifier(tenant=t),
    ) -> None:
        self._tenants = {
            t.name: _Tenant(verifier_for(t), GroupCommit(tenant=t, committer=committer_for(t)))
            for t in tenants
            if t.protocol == "api" and t.callback_token is not None
        }

    def routes(self) -> Sequence[web.RouteDef]:
        """The routes to mount on the public listener."""
        return [web.get(PATH, self.url_check), web.post(PATH, self.receive)]

    async def url_check(self, request: web.Request) -> web.StreamResponse:
        """GET: verify and answer the decrypted `echostr`."""
        tenant = self._tenant(request)
        try:
            echo = tenant.verifier.echo(request.query)
        except CallbackRefused as exc:
            return _refuse(tenant.config.name, exc.reason, "url_check")
        log.info("callback_url_checked", tenant=tenant.config.name)
        return web.Response(body=echo, content_type="text/plain")

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """POST: verify, refuse replays, commit, then answer 200."""
        tenant = self._tenant(request)
        try:
            verified = tenant.verifier.message(request.query, await _read_capped(request))
            async with asyncio.timeout(ANSWER_WITHIN_S):
                outcome = await tenant.group.submit(verified)
        except CallbackRefused as exc:
            return _refuse(tenant.config.name, exc.reason, "message")
        except (StoreError, TimeoutError) as exc:
            metrics.callback_refused("store")
            log.error("callback_store_failed", tenant=tenant.config.name, error=repr(exc))
            return web.Response(status=503, text="store unavailable, send again")
        metrics.callback_handled(outcome)
        return web.Response(text="")

    def _tenant(self, request: web.Request) -> _Tenant:
        found = self._tenants.get(request.match_info["tenant"])
        if found is None:
            metrics.callback_refused("tenant")
            # the name comes from the internet: keep the log line short
            log.info(
                "callback_refused",
                reason="tenant",
                tenant=request.match_info["tenant"][:MAX_NAME_CHARS],
            )
            raise web.HTTPNotFound(text="no such callback tenant")
        return found


def _refuse(tenant: str, reason: str, kind: str) -> web.Response:
    metrics.callback_refused(reason)
    log.warning("callback_refused", tenant=tenant, reason=reason, kind=kind)
    return web.Response(status=_STATUS.get(reason, 403), text=f"refused: {reason}")


async def _read_capped(request: web.Request) -> bytes:
    """The body, at most MAX_BODY_BYTES; a longer one is refused before it is all read."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise CallbackRefused("oversized")
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise CallbackRefused("oversized")
        parts.append(chunk)
    return b"".join(parts)
