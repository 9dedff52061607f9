"""A client of the new Exmail API (and of WeCom's `qyapi`, which shares its shape).

Every app of a corp has its own secret and so its own token (`gettoken?corpid&corpsecret`):
the 新邮件提醒 app's `corp_secret` for mail calls, the 单点登录 app's `sso_secret` (else
`corp_secret`) for `service/get_login_url`. Tokens live in the generic single-flight cache,
refreshed before `expires_in`; a call answered 40001/40014/42001 drops its token, fetches a
new one and retries exactly once. The token travels in the query string, so no URL is ever
put in a log line or an exception message here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import aiohttp
import orjson

from bridge import metrics
from bridge.config import ExmailSection, TenantConfig
from bridge.errors import TokenInvalidError, UpstreamError, UpstreamProtocolError
from bridge.exmail.seam import translated
from bridge.exmail.shapes import as_lifetime_s
from bridge.exmail_api.seam import judge
from bridge.logs import get_logger
from bridge.ratelimit import RateLimiter
from bridge.singleflight import Fetch, SingleFlightCache
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential, Opened

__all__ = ["ApiClient", "App"]

log = get_logger(__name__)
App = Literal["mail", "sso"]
DEFAULT_EXPIRES_S = 7200.0
_CHUNK_BYTES = 64 * 1024
_APPS: tuple[App, ...] = ("mail", "sso")


def secret_of(tenant: TenantConfig, app: App) -> tuple[str, str]:
    """(the cache's app name, the secret) of `app`: SSO falls back to the mail app."""
    if app == "sso" and tenant.sso_secret is not None:
        return "sso", tenant.sso_secret.get_secret_value()
    return "mail", tenant.corp_secret.get_secret_value()


class ApiClient:
    """Calls one provider's API for many tenants over one shared session."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        settings: ExmailSection,
        base_url: str,
        provider: str = "exmail",
        rate: RateLimiter | None = None,
        stash: TokenStash | None = None,
    ) -> None:
        self._session = session
        self._stash = stash
        self._settings = settings
        self._base = base_url.rstrip("/")
        self.provider = provider
        self._rate = rate
        self._tokens: SingleFlightCache[tuple[str, str], str] = SingleFlightCache(
            margin_s=settings.token_refresh_margin_s
        )

    async def token(self, tenant: TenantConfig, app: App = "mail") -> str:
        """A valid token of the tenant's `app` (a secret: never log it)."""
        name, secret = secret_of(tenant, app)
        fetch: Fetch[str] = lambda: self._fetch_token(tenant, secret)  # noqa: E731
        if self._stash is not None:
            fetch = self._stash.persisting(self._credential(tenant, app), fetch)
        return await self._tokens.get((tenant.name, name), fetch)

    def credentials(self, tenant: TenantConfig) -> list[Credential]:
        """The credentials whose tokens `restore` takes (for one bulk load at start)."""
        by_key = {c.key: c for c in (self._credential(tenant, app) for app in _APPS)}
        return list(by_key.values())  # without an SSO secret, both apps share one

    def restore(self, tenant: TenantConfig, loaded: dict[str, Opened]) -> int:
        """Hold the tenant's tokens from `loaded` that are fresh enough; how many."""
        if self._stash is None:
            return 0
        held = 0
        for app in _APPS:
            key = (tenant.name, secret_of(tenant, app)[0])
            held += self._stash.restore(self._tokens, key, self._credential(tenant, app), loaded)
        return held

    def _credential(self, tenant: TenantConfig, app: App) -> Credential:
        name, secret = secret_of(tenant, app)
        key = f"{self.provider}/{tenant.name}/{tenant.corp_id}/{name}"
        return Credential(key=key, secret=secret)

    def invalidate(self, tenant: TenantConfig, app: App, token: str) -> None:
        """Forget `token` of the tenant's `app`, if it is still the cached one."""
        self._tokens.invalidate((tenant.name, secret_of(tenant, app)[0]), token)

    async def call(
        self,
        tenant: TenantConfig,
        method: Literal["GET", "POST"],
        endpoint: str,
        *,
        app: App = "mail",
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Call `endpoint` with the app's token; refresh once on an invalid token.

        An answer longer than `max_bytes` (default `[exmail] max_body_bytes`) is unusable.
        """
        cap = max_bytes or self._settings.max_body_bytes

        def send(token: str) -> Awaitable[dict[str, Any]]:
            query = {**(params or {}), "access_token": token}
            return self._request(method, endpoint, query, body, cap)

        return await self._with_token(tenant, app, send)

    async def _with_token(
        self,
        tenant: TenantConfig,
        app: App,
        send: Callable[[str], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        token = await self.token(tenant, app)
        try:
            return await send(token)
        except TokenInvalidError:
            self.invalidate(tenant, app, token)
            log.info("api_token_invalidated", tenant=tenant.name, provider=self.provider, app=app)
            return await send(await self.token(tenant, app))

    async def _fetch_token(self, tenant: TenantConfig, secret: str) -> tuple[str, float]:
        query = {"corpid": tenant.corp_id, "corpsecret": secret}
        try:
            doc = await self._request("GET", "gettoken", query, None, self._settings.max_body_bytes)
            token = doc.get("access_token")
            if not isinstance(token, str) or not token:
                raise UpstreamProtocolError(
                    "no access_token", provider=self.provider, endpoint="gettoken", code="shape"
                )
        except UpstreamError as exc:
            metrics.token_refresh(self.provider, ok=False)
            log.warning(
                "api_token_failed", tenant=tenant.name, provider=self.provider, code=exc.code
            )
            raise
        metrics.token_refresh(self.provider, ok=True)
        return token, _expires_in(doc)

    def url_for(self, endpoint: str) -> str:
        """The URL of `endpoint` (e.g. `gettoken`) under this client's base."""
        return f"{self._base}/cgi-bin/{endpoint}"

    async def _request(
        self,
        method: str,
        endpoint: str,
        query: Mapping[str, str],
        body: Mapping[str, Any] | None,
        max_bytes: int,
    ) -> dict[str, Any]:
        if self._rate is not None:
            await self._rate.acquire()
        url = self.url_for(endpoint)
        data = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else None
        async with (
            translated(f"{self.provider}/{endpoint}"),
            asyncio.timeout(self._settings.timeout_s),
            self._session.request(method, url, params=query, data=data, headers=headers) as resp,
        ):
            raw = await _read_capped(resp.content, max_bytes)
        return judge(self.provider, endpoint, resp.status, _loads(raw))


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> bytes | None:
    """The whole body, or None once it passes `cap` bytes (read no further).

    One `read(n)` returns what has arrived so far, not the whole body: a long answer
    (a directory) must be read to its end.
    """
    raw = bytearray()
    async for chunk in content.iter_chunked(_CHUNK_BYTES):
        raw += chunk
        if len(raw) > cap:
            return None
    return bytes(raw)


def _loads(raw: bytes | None) -> Any:
    if raw is None:
        return None  # too long: judged as an unusable answer
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _expires_in(doc: Mapping[str, Any]) -> float:
    return as_lifetime_s(doc.get("expires_in"), DEFAULT_EXPIRES_S)
