"""Upstream tokens that outlive the process: sealed into the store on every fetch,
opened in bulk when tenants start.

Tencent blocks clients that call `gettoken` too often; a restart, a crash loop or a
replica taking tenants over would otherwise fetch one token per tenant again. Every fresh
token is written back (`persisting`); a store error there is logged once per outage and
never fails the fetch. `load` reads the tokens of many credentials in one store call and
keeps those it can open (`bridge.tokenvault`): a rotated secret, a corrupt or a forged
entry is simply absent, and the token is fetched anew.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.singleflight import Fetch, SingleFlightCache
from bridge.store.upstream_tokens import UpstreamTokenStore
from bridge.tokenvault import Credential, Opened, open_sealed, seal

__all__ = ["MIN_USE_S", "TokenStash"]

log = get_logger(__name__)
K = TypeVar("K", bound=Hashable)
# A stored token is used only when it still serves this long before its usual refresh
# (expiry - refresh margin); a nearly expired one is fetched anew at start.
MIN_USE_S = 300.0


class TokenStash:
    """Seals tokens into the store and opens them again; never raises a StoreError."""

    def __init__(
        self,
        *,
        store: UpstreamTokenStore,
        min_use_s: float = MIN_USE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._min_use_s = min_use_s
        self._clock = clock
        self._failing = False  # a save failed: say so once, not once per tenant

    def persisting(self, credential: Credential, fetch: Fetch[str]) -> Fetch[str]:
        """`fetch`, whose token is also saved (sealed) before it is handed out."""

        async def fetch_and_save() -> tuple[str, float]:
            token, lifetime_s = await fetch()
            await self.save(credential, token, lifetime_s)
            return token, lifetime_s

        return fetch_and_save

    async def save(self, credential: Credential, token: str, lifetime_s: float) -> None:
        """Keep `token` (valid `lifetime_s` from now) sealed under the credential's key."""
        expires_at = self._clock() + lifetime_s
        sealed = seal(credential, token, expires_at)
        try:
            await self._store.save_upstream_token(credential.key, sealed, expires_at)
        except StoreError as exc:
            if not self._failing:
                log.warning("upstream_token_save_failed", key=credential.key, error=str(exc))
            self._failing = True
            return
        self._failing = False

    async def load(self, credentials: Sequence[Credential]) -> dict[str, Opened]:
        """The stored tokens of `credentials` that open, by key: one store call. A store
        error is logged and answers nothing (every token is then fetched)."""
        by_key = {c.key: c for c in credentials}
        if not by_key:
            return {}
        try:
            found = await self._store.load_upstream_tokens(list(by_key))
        except StoreError as exc:
            log.warning("upstream_tokens_load_failed", wanted=len(by_key), error=str(exc))
            return {}
        opened = {key: open_sealed(by_key[key], raw) for key, raw in found.items()}
        usable = {key: o for key, o in opened.items() if o is not None}
        log.info("upstream_tokens_loaded", wanted=len(by_key), found=len(found), opened=len(usable))
        return usable

    def restore(
        self,
        cache: SingleFlightCache[K, str],
        key: K,
        credential: Credential,
        loaded: dict[str, Opened],
    ) -> bool:
        """Put the credential's loaded token into `cache` under `key` when it has enough
        life left; True when it did."""
        opened = loaded.get(credential.key)
        if opened is None:
            return False
        left_s = opened.expires_at - self._clock()
        return cache.seed(key, opened.token, left_s, min_use_s=self._min_use_s)
