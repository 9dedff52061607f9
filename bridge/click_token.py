"""Click tokens: signed, expiring claims of (tenant, mailbox, mail id, sending sink).

A card carries `{public_url}/open/<token>`, never a login ticket. The token is
`<payload>.<signature>`, both base64url without padding: the payload is the JSON array
`[tenant, mailbox, mail_id, expires_at, sink, issued_at]` (unix seconds; `sink` names the
sink that sent the link, so a click is checked against the WeCom corp that sent the
card), the signature an HMAC-SHA256 of `v1.<payload>` under the bridge's click key
(`[bridge] click_secret`, else a random key generated once and kept in the store so every
replica and restart agrees). Tokens signed before the sink was carried have the first four
fields only; they still verify, with no sink and an issue time of `expires_at - ttl_s`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.config import BridgeSection, Config, SinkConfig, WecomSinkConfig
from bridge.errors import InvalidClickToken
from bridge.events import Event
from bridge.store.base import Store

__all__ = ["Claim", "ClickSigner", "InvalidClickToken", "link_ttl_s", "load_click_key"]

CLICK_KEY_NAME = "click_secret"
LinkMaker = Callable[[Event], str]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a click token vouches for, until `expires_at` (unix seconds)."""

    tenant: str
    mailbox: str
    mail_id: str
    expires_at: int
    sink: str = ""  # the sink that sent the link ("" for links from before it was carried)
    issued_at: int = 0


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

    def sign(
        self,
        tenant: str,
        mailbox: str,
        mail_id: str,
        *,
        sink: str = "",
        ttl_s: float | None = None,
        now: float | None = None,
    ) -> str:
        """A token for (tenant, mailbox, mail_id) sent by `sink`, valid `ttl_s` from `now`."""
        issued_at = int(self._clock() if now is None else now)
        expires_at = int(issued_at + (self.ttl_s if ttl_s is None else ttl_s))
        claim = [tenant, mailbox, mail_id, expires_at, sink, issued_at]
        payload = _b64(orjson.dumps(claim))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float | None = None) -> Claim:
        """The claim inside `token`, or InvalidClickToken (malformed, forged, expired)."""
        payload, dot, signature = token.partition(".")
        if not dot or not payload or not signature:
            raise InvalidClickToken("malformed")
        _unb64(signature)
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidClickToken("forged")
        claim = _claim(_unb64(payload), self.ttl_s)
        if claim.expires_at <= (self._clock() if now is None else now):
            raise InvalidClickToken("expired")
        return claim

    def url_for(self, token: str) -> str:
        """`{public_url}/open/<token>`."""
        return f"{self.public_url}/open/{token}"

    def link_for(self, event: Event, *, sink: str = "", ttl_s: float | None = None) -> str:
        """The click-through link of a mail event, sent by `sink`."""
        mail_id = str(event.data.get("mail_id") or "")
        return self.url_for(self.sign(event.tenant, event.mailbox, mail_id, sink=sink, ttl_s=ttl_s))

    def links_for(self, sink: str, *, ttl_s: float) -> LinkMaker:
        """The link maker a sink is given: its links carry its name and lifetime."""
        return lambda event: self.link_for(event, sink=sink, ttl_s=ttl_s)


def _claim(raw: bytes, ttl_s: float) -> Claim:
    try:
        fields: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidClickToken("malformed") from exc
    if not isinstance(fields, list) or len(fields) not in (4, 6):
        raise InvalidClickToken("malformed")
    if len(fields) == 4:  # signed before links carried their sink
        fields = [*fields, "", fields[3] - int(ttl_s) if isinstance(fields[3], int) else 0]
    tenant, mailbox, mail_id, expires_at, sink, issued_at = fields
    if not all(isinstance(v, str) for v in (tenant, mailbox, mail_id, sink)):
        raise InvalidClickToken("malformed")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (expires_at, issued_at)):
        raise InvalidClickToken("malformed")
    return Claim(tenant, mailbox, mail_id, expires_at, sink, issued_at)


def link_ttl_s(bridge: BridgeSection, sink: SinkConfig) -> float:
    """How long a link `sink` sends stays valid: shorter when no OAuth check guards it."""
    if isinstance(sink, WecomSinkConfig) and sink.oauth:
        return bridge.click_ttl_s
    return min(bridge.click_ttl_s, bridge.click_ttl_without_oauth_s)


async def load_click_key(bridge: BridgeSection, store: Store) -> bytes:
    """`[bridge] click_secret`, else a random key generated once and kept in the store."""
    if bridge.click_secret is not None:
        return bridge.click_secret.get_secret_value().encode()
    return await store.get_secret(CLICK_KEY_NAME, secrets.token_bytes(32))


async def make_signer(config: Config, store: Store) -> ClickSigner:
    """The signer `[bridge]` describes (public_url, click key, click_ttl_s)."""
    key = await load_click_key(config.bridge, store)
    return ClickSigner(
        key=key, public_url=config.bridge.public_url, ttl_s=config.bridge.click_ttl_s
    )
