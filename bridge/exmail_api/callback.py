"""The callback receiver: `GET`/`POST /exmail/callback/{tenant}` on the public listener.

GET is Tencent's URL check: answer the decrypted `echostr` as plain text. POST carries one
encrypted message: verify it (bridge/exmail_api/callback_verify.py), refuse a replay,
commit its event durably, and only then answer 200 with an empty body. Refusals commit
nothing and answer 401 (signature) or 403 (corp, stale, replay, oversized, malformed),
the reason in the log line and the metric label. A store that is down answers 503, so
Tencent sends the callback again.

Replays: a verified callback's (msg_signature, nonce) is looked up in the store's marks
before the commit and marked for 10 minutes after it. Marking after the commit means a
commit that failed leaves no mark, so Tencent's retry is accepted; two copies racing each
other both commit, and the event id (tenant + MailID, or the UnRead's time) makes them one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase

from aiohttp import web

from bridge import baselines, metrics
from bridge.config import TenantConfig
from bridge.errors import CallbackRefused, StoreError
from bridge.exmail_api.callback_events import event_of
from bridge.exmail_api.callback_verify import Verified, Verifier
from bridge.exmail_api.callback_xml import ApiMail, ApiUnknown
from bridge.logs import get_logger
from bridge.sources.commit import Committer
from bridge.store.base import Store

__all__ = ["ANSWER_WITHIN_S", "MAX_BODY_BYTES", "REPLAY_TTL_S", "CallbackReceiver"]

log = get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024
REPLAY_TTL_S = 600.0
# Tencent drops the connection after 5 s and sends again. A commit still running by then
# finishes in the background (it is shielded); the retry is then a duplicate, deduplicated.
ANSWER_WITHIN_S = 3.0
PATH = "/exmail/callback/{tenant}"
MAX_NAME_CHARS = 64
_STATUS = {"signature": 401}  # every other refusal is 403


class _Tenant:
    """One callback tenant's verifier and commit path."""

    def __init__(self, verifier: Verifier, committer: Committer) -> None:
        self.verifier = verifier
        self.committer = committer
        self.config = verifier.tenant


class CallbackReceiver:
    """A public face: the callback routes of every tenant in callback mode."""

    def __init__(
        self,
        *,
        tenants: Iterable[TenantConfig],
        store: Store,
        committer_for: Callable[[TenantConfig], Committer],
        verifier_for: Callable[[TenantConfig], Verifier] = lambda t: Verifier(tenant=t),
    ) -> None:
        self._store = store
        self._tenants = {
            t.name: _Tenant(verifier_for(t), committer_for(t))
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
            if await self._store.is_marked(verified.replay_key):
                raise CallbackRefused("replay")
            async with asyncio.timeout(ANSWER_WITHIN_S):
                outcome = await self._commit(tenant, verified)
        except CallbackRefused as exc:
            return _refuse(tenant.config.name, exc.reason, "message")
        except (StoreError, TimeoutError) as exc:
            metrics.callback_refused("store")
            log.error("callback_store_failed", tenant=tenant.config.name, error=repr(exc))
            return web.Response(status=503, text="store unavailable, send again")
        await self._mark(tenant, verified)
        metrics.callback_handled(outcome)
        return web.Response(text="")

    def _tenant(self, request: web.Request) -> _Tenant:
        name = request.match_info["tenant"]
        found = self._tenants.get(name)
        if found is None:
            metrics.callback_refused("tenant")
            # Anyone may call this public path: log at most a tenant name's worth of it.
            log.info("callback_refused", reason="tenant", tenant=name[:MAX_NAME_CHARS])
            raise web.HTTPNotFound(text="no such callback tenant")
        return found

    async def _commit(self, tenant: _Tenant, verified: Verified) -> str:
        push = verified.push
        if isinstance(push, ApiUnknown):
            log.warning(
                "callback_unknown_type",
                tenant=tenant.config.name,
                msg_type=push.msg_type[:40],
                keys=list(push.keys)[:20],
            )
            return "unknown_type"
        if not _wanted(tenant.config, push.mailbox):
            return "ignored"
        # A watched mailbox's count moves its baseline in the same commit, so the reconcile
        # after the next start does not announce this mail a second time.
        count = push.new_count if isinstance(push, ApiMail) else push.unread_count
        counts = baselines.watched_count(tenant.config.watch, push.mailbox, count)
        event = event_of(tenant.config, push)
        result = await tenant.committer.commit_once([event], baselines=counts)
        return "committed" if result.emitted else "duplicate"

    async def _mark(self, tenant: _Tenant, verified: Verified) -> None:
        try:
            await self._store.mark(verified.replay_key, REPLAY_TTL_S)
        except StoreError as exc:  # committed already: a replay would only be a duplicate
            log.warning("callback_mark_failed", tenant=tenant.config.name, error=str(exc))


def _wanted(tenant: TenantConfig, mailbox: str) -> bool:
    return any(fnmatchcase(mailbox.lower(), p.lower()) for p in tenant.mailboxes)


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
