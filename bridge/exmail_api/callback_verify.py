"""Verifying one tenant's callbacks: signature, freshness, decryption, corp. No I/O here."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.config import TenantConfig
from bridge.errors import CallbackRefused
from bridge.exmail_api.callback_xml import CallbackPush, envelope_encrypt, parse
from bridge.exmail_api.crypto import CallbackCrypto

__all__ = ["MAX_SKEW_S", "Verified", "Verifier"]

MAX_SKEW_S = 300.0  # a timestamp further than this from our clock is refused as stale


@dataclass(frozen=True, slots=True)
class Verified:
    """A callback that passed every check; `replay_key` is its nonce key in the store."""

    push: CallbackPush
    replay_key: str


class Verifier:
    """Checks callbacks of one tenant (callback mode: token and AES key configured)."""

    def __init__(
        self,
        *,
        tenant: TenantConfig,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_SKEW_S,
    ) -> None:
        if tenant.callback_token is None or tenant.callback_aes_key is None:
            raise ValueError(f"tenant {tenant.name} is not in callback mode")
        self.tenant = tenant
        self._crypto = CallbackCrypto(
            token=tenant.callback_token.get_secret_value(),
            aes_key=tenant.callback_aes_key.get_secret_value(),
            receive_id=tenant.corp_id,
        )
        self._clock = clock
        self._max_skew_s = max_skew_s

    def echo(self, query: Mapping[str, str]) -> bytes:
        """The URL check (GET): the decrypted `echostr`, after every check."""
        return self._open(query, query.get("echostr", ""))

    def message(self, query: Mapping[str, str], body: bytes) -> Verified:
        """An event (POST): the typed message inside `<xml><Encrypt>`."""
        push = parse(self._open(query, envelope_encrypt(body)))
        corp = getattr(push, "corp_id", "")
        if corp and corp != self.tenant.corp_id:
            raise CallbackRefused("corp")
        return Verified(push=push, replay_key=self._replay_key(query))

    def _open(self, query: Mapping[str, str], encrypt: str) -> bytes:
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        self._crypto.verify(query.get("msg_signature", ""), timestamp, nonce, encrypt)
        self._check_fresh(timestamp)
        return self._crypto.decrypt(encrypt)

    def _check_fresh(self, timestamp: str) -> None:
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise CallbackRefused("stale")
        if abs(self._clock() - int(timestamp)) > self._max_skew_s:
            raise CallbackRefused("stale")

    def _replay_key(self, query: Mapping[str, str]) -> str:
        parts = (self.tenant.name, query.get("msg_signature", ""), query.get("nonce", ""))
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
        return f"callback:{digest}"
