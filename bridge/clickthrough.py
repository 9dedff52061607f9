"""Click-through: signed, expiring links from a chat card to the mail in Exmail.

A card carries `{public_url}/open/<token>`, never a login ticket. The token is
`<payload>.<signature>`, both base64url without padding: the payload is the JSON array
`[tenant, mailbox, mail_id, expires_at]` (unix seconds), the signature an HMAC-SHA256 of
`v1.<payload>` under the bridge's click key (`[bridge] click_secret`, else a random key
generated once and kept in the store so every replica and restart agrees).

`GET /open/<token>` verifies the token; with a WeCom sink whose `oauth = true` it first
sends the browser through WeCom OAuth and checks that the clicking member owns the
mailbox; then it fetches a fresh Exmail auth key and redirects to Exmail's SSO login. A
forged, expired or foreign token gets a 403 page saying why, never a login. The auth
key and the SSO URL are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import orjson
from aiohttp import web

from bridge.clickthrough_pages import Reason, forbidden, oauth_redirect, redirect, unavailable
from bridge.config import BridgeSection, Config, TenantConfig, WecomSinkConfig
from bridge.errors import InvalidClickToken, UpstreamError, UpstreamUnavailable
from bridge.events import Event
from bridge.logs import get_logger
from bridge.store.base import Store

__all__ = [
    "AuthKeys",
    "Claim",
    "ClickSigner",
    "ClickThrough",
    "InvalidClickToken",
    "MemberCheck",
    "load_click_key",
    "make_open_handler",
]

log = get_logger(__name__)
CLICK_KEY_NAME = "click_secret"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a click token vouches for, until `expires_at` (unix seconds)."""

    tenant: str
    mailbox: str
    mail_id: str
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidClickToken("malformed") from exc


class ClickSigner:
    """Signs and verifies click tokens, and builds click-through links."""

    def __init__(
        self,
        *,
        key: bytes,
        public_url: str,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the click key needs at least 16 bytes")
        self._key = key
        self.public_url = public_url.rstrip("/")
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, f"v1.{payload}".encode(), hashlib.sha256).digest())

    def sign(self, tenant: str, mailbox: str, mail_id: str, *, now: float | None = None) -> str:
        """A token for (tenant, mailbox, mail_id) that expires `ttl_s` from `now`."""
        expires_at = int((self._clock() if now is None else now) + self.ttl_s)
        payload = _b64(orjson.dumps([tenant, mailbox, mail_id, expires_at]))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float | None = None) -> Claim:
        """The claim inside `token`, or InvalidClickToken (malformed, forged, expired)."""
        payload, dot, signature = token.partition(".")
        if not dot or not payload or not signature:
            raise InvalidClickToken("malformed")
        _unb64(signature)
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidClickToken("forged")
        claim = _claim(_unb64(payload))
        if claim.expires_at <= (self._clock() if now is None else now):
            raise InvalidClickToken("expired")
        return claim

    def url_for(self, token: str) -> str:
        """`{public_url}/open/<token>`."""
        return f"{self.public_url}/open/{token}"

    def link_for(self, event: Event) -> str:
        """The click-through link of a mail event."""
        mail_id = str(event.data.get("mail_id") or "")
        return self.url_for(self.sign(event.tenant, event.mailbox, mail_id))


def _claim(raw: bytes) -> Claim:
    try:
        tenant, mailbox, mail_id, expires_at = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise InvalidClickToken("malformed") from exc
    if not all(isinstance(v, str) for v in (tenant, mailbox, mail_id)):
        raise InvalidClickToken("malformed")
    if not isinstance(expires_at, int):
        raise InvalidClickToken("malformed")
    return Claim(tenant=tenant, mailbox=mailbox, mail_id=mail_id, expires_at=expires_at)


async def load_click_key(bridge: BridgeSection, store: Store) -> bytes:
    """`[bridge] click_secret`, else a random key generated once and kept in the store."""
    if bridge.click_secret is not None:
        return bridge.click_secret.get_secret_value().encode()
    return await store.get_secret(CLICK_KEY_NAME, secrets.token_bytes(32))


class AuthKeys(Protocol):
    """Exmail's SSO: what `bridge.exmail.client.ExmailClient` provides."""

    async def authkey(self, tenant: TenantConfig, mailbox: str) -> str:
        """A fresh one-time login key for `mailbox` (a secret)."""

    def sso_url(self, tenant: TenantConfig, mailbox: str, auth_key: str) -> str:
        """The one-click login URL carrying `auth_key`."""


@runtime_checkable
class MemberCheck(Protocol):
    """WeCom identity checks: what `sinks.wecom.WecomSink` provides."""

    @property
    def config(self) -> WecomSinkConfig:
        """The WeCom sink's configuration (`oauth`, `oauth_url`, `corp_id`, `agent_id`)."""

    async def oauth_userid(self, code: str) -> str:
        """The member an OAuth code was issued to."""

    async def userid_for(self, mailbox: str) -> str | None:
        """The member who owns `mailbox`, if any."""


class ClickThrough:
    """The click-through feature as the app wires it: links for sinks, `/open/` for browsers.

    `bind_sinks` picks the WeCom sink used to check who clicked: the first with
    `oauth = true`, else none (no OAuth step).
    """

    def __init__(
        self,
        *,
        signer: ClickSigner,
        tenants: Iterable[TenantConfig],
        authkeys: AuthKeys,
        wecom: MemberCheck | None = None,
    ) -> None:
        self.signer = signer
        self._tenants = {tenant.name: tenant for tenant in tenants}
        self._authkeys = authkeys
        self.wecom = wecom

    @classmethod
    async def create(cls, *, config: Config, store: Store, authkeys: AuthKeys) -> ClickThrough:
        """From `[bridge]` (public_url, click_secret or the store's key, click_ttl_s)."""
        key = await load_click_key(config.bridge, store)
        signer = ClickSigner(
            key=key, public_url=config.bridge.public_url, ttl_s=config.bridge.click_ttl_s
        )
        return cls(signer=signer, tenants=config.tenants, authkeys=authkeys)

    def link_for(self, event: Event) -> str:
        """The click-through link of a mail event (what a WeCom card's button opens)."""
        return self.signer.link_for(event)

    def bind_sinks(self, sinks: Iterable[object]) -> None:
        """Use the first WeCom sink with `oauth = true` (sinks or objects with `.sink`)."""
        for item in sinks:
            sink = getattr(item, "sink", item)
            if isinstance(sink, MemberCheck) and _wants_oauth(sink.config):
                self.wecom = sink
                return

    def routes(self) -> list[web.RouteDef]:
        """`GET /open/{token}`, for the public listener."""
        return [web.get("/open/{token}", self.handler)]

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """`GET /open/{token}`: verify, (WeCom OAuth), then redirect to the Exmail login."""
        token = request.match_info["token"]
        try:
            claim = self.signer.verify(token)
        except InvalidClickToken as exc:
            log.info("click_refused", reason=exc.reason)
            return forbidden(exc.reason)
        tenant = self._tenants.get(claim.tenant)
        if tenant is None:
            log.info("click_refused", reason="tenant", tenant=claim.tenant)
            return forbidden("tenant")
        wecom = self.wecom
        if wecom is not None and wecom.config.oauth:
            code = request.query.get("code", "")
            if not code:
                return oauth_redirect(wecom.config, self.signer.url_for(token))
            denial = await _member_denial(wecom, code, claim)
            if denial is not None:
                return forbidden(denial) if denial != "unavailable" else unavailable()
        return await _login(self._authkeys, tenant, claim)


def _wants_oauth(config: object) -> bool:
    return isinstance(config, WecomSinkConfig) and config.oauth


def make_open_handler(
    *,
    signer: ClickSigner,
    tenants: Iterable[TenantConfig],
    authkeys: AuthKeys,
    wecom: MemberCheck | None = None,
) -> Handler:
    """The `GET /open/{token}` handler; mount it with `app.router.add_get`."""
    clicks = ClickThrough(signer=signer, tenants=tenants, authkeys=authkeys, wecom=wecom)
    return clicks.handler


async def _member_denial(
    wecom: MemberCheck, code: str, claim: Claim
) -> Reason | Literal["unavailable"] | None:
    try:
        userid = await wecom.oauth_userid(code)
        owner = await wecom.userid_for(claim.mailbox)
    except UpstreamUnavailable:
        return "unavailable"
    except UpstreamError as exc:
        log.info("click_refused", reason="identity", tenant=claim.tenant, errcode=exc.code)
        return "identity"
    if owner is None or owner.lower() != userid.lower():
        log.warning("click_refused", reason="not_owner", tenant=claim.tenant, mailbox=claim.mailbox)
        return "not_owner"
    return None


async def _login(authkeys: AuthKeys, tenant: TenantConfig, claim: Claim) -> web.StreamResponse:
    try:
        key = await authkeys.authkey(tenant, claim.mailbox)
    except UpstreamError as exc:
        log.warning(
            "click_authkey_failed", tenant=tenant.name, mailbox=claim.mailbox, errcode=exc.code
        )
        return unavailable()
    log.info("click_login", tenant=tenant.name, mailbox=claim.mailbox)
    return redirect(authkeys.sso_url(tenant, claim.mailbox, key))
