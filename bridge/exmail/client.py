"""The Exmail legacy OpenAPI client: tokens, the listen long poll, and the read calls.

Every call takes the tenant it is for. On `1200 invalid_token` a call drops the token,
fetches a new one and retries exactly once; a second `1200` raises TokenInvalidError.
Errors are the bridge's own (bridge/errors.py); aiohttp's never leak out.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from bridge import metrics
from bridge.config import ExmailSection, TenantConfig
from bridge.errors import TokenInvalidError, UpstreamError
from bridge.exmail.decode import Garbage, Oversized, StreamDecoder
from bridge.exmail.pushes import Push, UnknownPush
from bridge.exmail.seam import error_for_body, is_error_body, protocol_error, translated
from bridge.exmail.session import listen_read_timeout_s
from bridge.exmail.shapes import (
    DirectoryDelta,
    ShapeError,
    UserInfo,
    as_count,
    as_lifetime_s,
    auth_key_of,
    delta_of,
    push_of,
    user_of,
)
from bridge.exmail.token import Fetcher, TokenCache
from bridge.exmail.transport import Exchange, judge
from bridge.logs import get_logger
from bridge.ratelimit import RateLimiter
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential, Opened

__all__ = ["ExmailClient"]

log = get_logger(__name__)
T = TypeVar("T")


class ExmailClient:
    """Talks to one Exmail deployment on behalf of many tenants, sharing one session."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        settings: ExmailSection,
        rate: RateLimiter | None = None,
        stash: TokenStash | None = None,
    ) -> None:
        self._settings = settings
        self._stash = stash
        self._rate = rate
        self._api = settings.api_base.rstrip("/")
        # Parsed once: aiohttp would parse a string URL again on every request.
        self._token_url = URL(settings.token_url)
        self._urls: dict[str, URL] = {}
        self._tokens = TokenCache(margin_s=settings.token_refresh_margin_s)
        self._http = Exchange(
            session=session,
            connect_s=settings.connect_timeout_s,
            max_body_bytes=settings.max_body_bytes,
        )

    # -- tokens ---------------------------------------------------------------------------

    async def fetch_token(self, tenant: TenantConfig) -> None:
        """Fetch a fresh token now (raises CredentialsError for a bad credential)."""
        self._tokens.invalidate(tenant.name)
        await self._token(tenant)

    async def _token(self, tenant: TenantConfig) -> str:
        fetch: Fetcher = lambda: self._request_token(tenant)  # noqa: E731
        if self._stash is not None:
            fetch = self._stash.persisting(_credential(tenant), fetch)
        return await self._tokens.get(tenant.name, fetch)

    def credentials(self, tenant: TenantConfig) -> list[Credential]:
        """The credentials whose tokens `restore` takes (for one bulk load at start)."""
        return [_credential(tenant)]

    def restore(self, tenant: TenantConfig, loaded: dict[str, Opened]) -> int:
        """Hold the tenant's token from `loaded` when it is fresh enough; how many."""
        if self._stash is None:
            return 0
        return int(self._stash.restore(self._tokens, tenant.name, _credential(tenant), loaded))

    async def _request_token(self, tenant: TenantConfig) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret.get_secret_value(),
        }
        try:
            obj = await self._post(tenant, "token", self._token_url, form, {})
            token, expires_in_s = _token_of(obj)
        except UpstreamError:
            metrics.token_refresh("exmail", ok=False)
            log.warning("exmail_token_failed", tenant=tenant.name)
            raise
        metrics.token_refresh("exmail", ok=True)
        return token, expires_in_s

    # -- read calls -----------------------------------------------------------------------

    async def user_list(self, tenant: TenantConfig, ver: str) -> DirectoryDelta:
        """Directory changes after `ver` ("0" = everyone) and the new version."""
        cap = self._settings.directory_max_body_bytes  # a 100,000-account company fits
        return await self._call(tenant, "user/list", {"Ver": ver}, delta_of, max_bytes=cap)

    async def newcount(self, tenant: TenantConfig, mailbox: str) -> int:
        """The unread count of `mailbox`."""
        return await self._call(tenant, "mail/newcount", {"alias": mailbox}, _count_of)

    async def user_get(self, tenant: TenantConfig, mailbox: str) -> UserInfo:
        """The directory entry of `mailbox`."""
        return await self._call(tenant, "user/get", {"alias": mailbox}, user_of)

    async def authkey(self, tenant: TenantConfig, mailbox: str) -> str:
        """A one-time login key for `mailbox` (a secret: never log it)."""
        return await self._call(tenant, "mail/authkey", {"alias": mailbox}, auth_key_of)

    def sso_url(self, tenant: TenantConfig, mailbox: str, auth_key: str, mail_id: str = "") -> str:
        """The one-click login URL for `mailbox` with a key from `authkey()`.

        With `mail_id` it carries `mailid`, which Exmail's SSO document lists for opening
        the mail a push named; where Exmail ignores it the user lands in the inbox.
        """
        fields = {
            "fun": "bizopenssologin",
            "method": "bizauth",
            "agent": tenant.client_id,
            "user": mailbox,
            "ticket": auth_key,
        }
        if mail_id:
            fields["mailid"] = mail_id
        return f"{self._settings.effective_login_url}?{urlencode(fields)}"

    async def _call(
        self,
        tenant: TenantConfig,
        endpoint: str,
        form: dict[str, str],
        shape: Callable[[Any], T],
        max_bytes: int | None = None,
    ) -> T:
        obj = await self._with_token(
            tenant, lambda token: self._api_post(tenant, endpoint, form, token, max_bytes)
        )
        try:
            return shape(obj)
        except ShapeError as exc:
            raise protocol_error(endpoint, "shape") from exc

    async def _with_token(self, tenant: TenantConfig, call: Callable[[str], Awaitable[T]]) -> T:
        token = await self._token(tenant)
        try:
            return await call(token)
        except TokenInvalidError:
            self._tokens.invalidate(tenant.name, token)
        log.info("exmail_token_invalidated", tenant=tenant.name)
        return await call(await self._token(tenant))

    async def _api_post(
        self,
        tenant: TenantConfig,
        endpoint: str,
        form: dict[str, str],
        token: str,
        max_bytes: int | None,
    ) -> Any:
        url = self._url(endpoint)
        return await self._post(tenant, endpoint, url, form, _bearer(token), max_bytes)

    def _url(self, endpoint: str) -> URL:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = URL(f"{self._api}/openapi/{endpoint}")
        return url

    async def _post(
        self,
        tenant: TenantConfig,
        endpoint: str,
        url: URL,
        form: dict[str, str],
        headers: dict[str, str],
        max_bytes: int | None = None,
    ) -> Any:
        await self._acquire(tenant)
        return await self._http.post_json(
            endpoint,
            url,
            form,
            headers=headers,
            read_s=self._settings.timeout_s,
            max_bytes=max_bytes,
        )

    async def _acquire(self, tenant: TenantConfig) -> None:
        if self._rate is not None:
            await self._rate.acquire(tenant.name)  # shared fairly between tenants

    # -- listen ---------------------------------------------------------------------------

    async def listen(self, tenant: TenantConfig, ver: str) -> AsyncGenerator[Push, None]:
        """One listen request: yield its pushes as they arrive, end when the answer ends.

        Use with `contextlib.aclosing` when you may stop early, so the socket is released.
        """
        async with contextlib.aclosing(self.listen_batches(tenant, ver)) as batches:
            async for batch in batches:
                for push in batch:
                    yield push

    async def listen_batches(
        self, tenant: TenantConfig, ver: str
    ) -> AsyncGenerator[list[Push], None]:
        """One listen request, as batches: first an empty one as soon as the upstream has
        started its answer (the listen is held), then the pushes decoded from each socket
        read, together, so the caller can commit them in one store transaction.

        Use with `contextlib.aclosing` when you may stop early, so the socket is released.
        """
        token = await self._token(tenant)
        try:
            first = True
            async for batch in self._listen_once(tenant, ver, token):
                first = first and not batch
                yield batch
            return
        except TokenInvalidError:
            if not first:
                raise
            self._tokens.invalidate(tenant.name, token)
        log.info("exmail_token_invalidated", tenant=tenant.name)
        async for batch in self._listen_once(tenant, ver, await self._token(tenant)):
            yield batch

    async def _listen_once(
        self, tenant: TenantConfig, ver: str, token: str
    ) -> AsyncIterator[list[Push]]:
        # One frame for the whole held listen (no nested generators, no timer of our own:
        # the session's sock_read bounds every read): 10,000 of these are held at once.
        read_s = listen_read_timeout_s(self._settings)
        await self._acquire(tenant)
        async with translated("listen"):
            form = {"Ver": ver}
            url = self._url("listen")
            resp = await self._http.send(
                "listen", url, form, _bearer(token), read_s, cap_declared=False
            )
            async with resp:
                if resp.status != 200:
                    body = await self._http.read_capped("listen", resp)
                    judge("listen", resp.status, resp.headers.get("Retry-After"), body)
                yield []  # held: the upstream took the listen and is answering
                # The cap applies to each push: a busy stream may carry megabytes in all.
                decoder = StreamDecoder(max_value_bytes=self._settings.max_body_bytes)
                while chunk := await resp.content.readany():
                    items, oversized = _decoded(decoder, chunk)
                    async for batch in self._pushes_of(tenant, items):
                        yield batch
                    if oversized:
                        raise protocol_error("listen", "oversized")
                async for batch in self._pushes_of(tenant, decoder.close()):
                    yield batch

    async def _pushes_of(self, tenant: TenantConfig, items: list[Any]) -> AsyncIterator[list[Push]]:
        """The pushes among one read's items; before an error item raises, the pushes read
        ahead of it are handed out, so none of them is lost."""
        batch: list[Push] = []
        try:
            for item in items:
                push = self._push_of(tenant, item)
                if push is not None:
                    batch.append(push)
        except UpstreamError:
            if batch:
                yield batch
            raise
        if batch:
            yield batch

    def _push_of(self, tenant: TenantConfig, item: Any) -> Push | None:
        if isinstance(item, Garbage):
            metrics.push_decode_error("json")
            log.warning("exmail_push_not_json", tenant=tenant.name, size=item.size)
            return None
        if is_error_body(item):
            raise error_for_body("listen", item)
        push = push_of(item)
        if isinstance(push, UnknownPush):
            metrics.push_decode_error("shape")
            log.warning("exmail_push_unknown_shape", tenant=tenant.name, keys=list(push.keys))
        return push


def _decoded(decoder: StreamDecoder, chunk: bytes) -> tuple[list[Any], bool]:
    """The values of one socket read up to any oversized one, and whether one was."""
    items = decoder.feed(chunk)
    if not decoder.saw_oversized:  # the common case: no item to look for
        return items, decoder.overflowing
    cut = next((i for i, item in enumerate(items) if isinstance(item, Oversized)), None)
    return items[:cut], cut is not None or decoder.overflowing


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count_of(obj: Any) -> int:
    if not isinstance(obj, dict) or "NewCount" not in obj:
        raise ShapeError("mail/newcount answer without NewCount")
    return as_count(obj["NewCount"])


def _token_of(obj: Any) -> tuple[str, float]:
    token = obj.get("access_token") if isinstance(obj, dict) else None
    if not isinstance(token, str) or not token:
        raise protocol_error("token", "shape")
    return token, max(as_lifetime_s(obj.get("expires_in"), 86400.0), 1.0)


def _credential(tenant: TenantConfig) -> Credential:
    secret = tenant.client_secret.get_secret_value()
    return Credential(key=f"exmail/{tenant.name}/{tenant.client_id}", secret=secret)
