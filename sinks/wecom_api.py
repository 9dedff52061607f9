"""A small WeCom API client: one cached access token per app, errcodes as BridgeErrors.

This is the one seam where aiohttp errors and WeCom errcodes become the bridge's
exception tree. The access token travels in the query string, so no URL is ever put in a
log line or an exception message here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from bridge import metrics
from bridge.config import WecomSinkConfig
from bridge.errors import (
    CredentialsError,
    RateLimited,
    TokenInvalidError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bridge.exmail.shapes import as_lifetime_s
from bridge.logs import get_logger
from bridge.netfail import connection_reason
from bridge.singleflight import Fetch, SingleFlightCache
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential

__all__ = [
    "CONFIG_ERRCODES",
    "MISSING_USER_ERRCODES",
    "WecomApi",
    "WecomApiError",
    "code_label",
    "status_label",
]

log = get_logger(__name__)
TOKEN_ERRCODES = frozenset({40014, 42001, 41001})
# The app's own configuration is wrong: bad secret, bad agentid, forbidden, untrusted IP.
CONFIG_ERRCODES = frozenset({40001, 40091, 40056, 48002, 60020})
MISSING_USER_ERRCODES = frozenset({46004, 60111, 40003})
_RETRY_AFTER_S = {45009: 60.0, 45033: 5.0, -1: 2.0}
_MAX_BODY_B = 1 << 20
DEFAULT_TOKEN_S = 7200.0  # WeCom's documented token lifetime
# Metric label values come from this set only ("other" else): an upstream answer must not
# mint label values (a hostile or broken server could send a new errcode every time).
_KNOWN_ERRCODES = (
    TOKEN_ERRCODES
    | CONFIG_ERRCODES
    | MISSING_USER_ERRCODES
    | frozenset(_RETRY_AFTER_S)
    | frozenset({40029, 40008, 44004, 45002, 81013})
)
_KNOWN_STATUSES = frozenset({400, 401, 403, 404, 408, 429, 500, 502, 503, 504})


def code_label(errcode: int) -> str:
    """`errcode` as a metric label value: a known WeCom code, else "other"."""
    return str(errcode) if errcode in _KNOWN_ERRCODES else "other"


def status_label(status: int, prefix: str = "") -> str:
    """An HTTP status as a metric label value: a known status, else "other"."""
    return f"{prefix}{status}" if status in _KNOWN_STATUSES else f"{prefix}other"


def _errcode_of(endpoint: str, doc: dict[str, Any]) -> int:
    try:
        return int(doc.get("errcode") or 0)
    except (TypeError, ValueError):
        metrics.upstream_error(f"wecom/{endpoint}", "other")
        raise UpstreamProtocolError(
            "errcode is not a number", provider="wecom", endpoint=endpoint
        ) from None


class WecomApiError(UpstreamRejected):
    """WeCom refused one request; `errcode` and `errmsg` say why (never a token)."""

    def __init__(self, endpoint: str, errcode: int, errmsg: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        super().__init__(
            errmsg or "rejected", provider="wecom", endpoint=endpoint, code=str(errcode)
        )


def _errcode_error(endpoint: str, errcode: int, errmsg: str) -> UpstreamError:
    code = str(errcode)
    if errcode in TOKEN_ERRCODES:
        return TokenInvalidError(errmsg, provider="wecom", endpoint=endpoint, code=code)
    if errcode in CONFIG_ERRCODES:
        return CredentialsError(errmsg, provider="wecom", endpoint=endpoint, code=code)
    if errcode in _RETRY_AFTER_S:
        wait_s = _RETRY_AFTER_S[errcode]
        kind = RateLimited if errcode != -1 else UpstreamUnavailable
        return kind(errmsg, provider="wecom", endpoint=endpoint, code=code, retry_after_s=wait_s)
    return WecomApiError(endpoint, errcode, errmsg)


class WecomApi:
    """Calls one WeCom app's API with a cached token (single flight, refreshed early)."""

    def __init__(
        self,
        *,
        config: WecomSinkConfig,
        session: aiohttp.ClientSession | None = None,
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        stash: TokenStash | None = None,
    ) -> None:
        self.config = config
        self._stash = stash
        self._session = session
        self._own_session = session is None
        # one app, one token: the bridge's generic single-flight cache with a single key
        self._tokens: SingleFlightCache[str, str] = SingleFlightCache(
            margin_s=refresh_margin_s, clock=clock
        )

    async def start(self) -> None:
        """Open the HTTP session (unless one was passed in); take the app's token from
        the store when one was kept there, fresh enough."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self._stash is not None:
            loaded = await self._stash.load([self._credential])
            self._stash.restore(self._tokens, "", self._credential, loaded)

    async def aclose(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    # the token ---------------------------------------------------------------------
    async def token(self) -> str:
        """A valid access token; fetched once by one caller while the others wait."""
        fetch: Fetch[str] = self._fetch_token
        if self._stash is not None:
            fetch = self._stash.persisting(self._credential, fetch)
        return await self._tokens.get("", fetch)

    @property
    def _credential(self) -> Credential:
        key = f"wecom-app/{self.config.corp_id}/{self.config.agent_id}"
        return Credential(key=key, secret=self.config.corp_secret.get_secret_value())

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still the cached one (WeCom revoked it)."""
        self._tokens.invalidate("", token)

    async def _fetch_token(self) -> tuple[str, float]:
        params = {
            "corpid": self.config.corp_id,
            "corpsecret": self.config.corp_secret.get_secret_value(),
        }
        try:
            doc = await self._request("GET", "gettoken", params=params)
        except UpstreamError:
            metrics.token_refresh("wecom", False)
            raise
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:  # else every call would go out without
            metrics.token_refresh("wecom", False)
            metrics.upstream_error("wecom/gettoken", "shape")
            raise UpstreamProtocolError(
                "no access_token", provider="wecom", endpoint="gettoken", code="shape"
            )
        metrics.token_refresh("wecom", True)
        expires_in_s = as_lifetime_s(doc.get("expires_in"), DEFAULT_TOKEN_S)
        return token, expires_in_s

    # calls -------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call `endpoint` with the token; on 40014/42001 refresh once and retry once."""
        token = await self.token()
        try:
            return await self._request(method, endpoint, params=params, body=body, token=token)
        except TokenInvalidError:
            self.invalidate(token)
            token = await self.token()
            return await self._request(method, endpoint, params=params, body=body, token=token)

    async def send_message(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`message/send`; the answer carries `invaliduser` and `msgid`."""
        return await self.call("POST", "message/send", body=payload)

    async def userid_by_email(self, email: str) -> str | None:
        """`user/get_userid_by_email`; None when WeCom knows no such member."""
        body = {"email": email, "email_type": 1}
        try:
            doc = await self.call("POST", "user/get_userid_by_email", body=body)
        except WecomApiError as exc:
            if exc.errcode in MISSING_USER_ERRCODES:
                return None
            raise
        return str(doc.get("userid") or "") or None

    async def userid_by_code(self, code: str) -> str:
        """`auth/getuserinfo`: the member who was given this OAuth code."""
        doc = await self.call("GET", "auth/getuserinfo", params={"code": code})
        userid = doc.get("userid") or doc.get("UserId")
        if not userid:
            raise WecomApiError("auth/getuserinfo", 0, "not a member of the corp")
        return str(userid)

    async def _request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        token: str = "",
    ) -> dict[str, Any]:
        query = dict(params or {})
        if token:
            query["access_token"] = token
        doc = await self._http(method, endpoint, query, body)
        errcode = _errcode_of(endpoint, doc)
        if errcode:
            metrics.upstream_error(f"wecom/{endpoint}", code_label(errcode))
            raise _errcode_error(endpoint, errcode, str(doc.get("errmsg") or ""))
        return doc

    async def _http(
        self, method: str, endpoint: str, query: dict[str, str], body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("WecomApi.start() was not called")
        url = f"{self.config.api_base.rstrip('/')}/cgi-bin/{endpoint}"
        data = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async with self._session.request(
                    method, url, params=query, data=data, headers=headers
                ) as resp:
                    return _decode(endpoint, resp.status, await resp.content.read(_MAX_BODY_B))
        except TimeoutError as exc:
            metrics.upstream_error(f"wecom/{endpoint}", "timeout")
            raise UpstreamTimeout("timed out", provider="wecom", endpoint=endpoint) from exc
        except aiohttp.ClientError as exc:
            # The exception's own text may quote the URL (and so the token): never use it.
            metrics.upstream_error(f"wecom/{endpoint}", "connection")
            reason = connection_reason(exc)
            raise UpstreamUnavailable(reason, provider="wecom", endpoint=endpoint) from None


def _decode(endpoint: str, status: int, raw: bytes) -> dict[str, Any]:
    if status >= 500 or status == 429:
        metrics.upstream_error(f"wecom/{endpoint}", status_label(status))
        raise UpstreamUnavailable(f"HTTP {status}", provider="wecom", endpoint=endpoint)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        metrics.upstream_error(f"wecom/{endpoint}", status_label(status, "http_"))
        raise UpstreamProtocolError(
            f"HTTP {status}, not a JSON object", provider="wecom", endpoint=endpoint
        )
    return doc
