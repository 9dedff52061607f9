"""Tenants start with the tokens they had: one bulk load from the store, no `gettoken`.

The pool calls a `TokenWarmer` with the tenants it is about to start (all of them at
start, a dead replica's share on a takeover). It asks each tenant's client which
credentials it would fetch tokens for, loads them all in one store call
(`TokenStash.load`) and lets each client hold the ones with enough life left; the rest
are fetched as before, when first needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bridge.config import TenantConfig
from bridge.logs import get_logger
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential, Opened

__all__ = ["TokenHolder", "TokenWarmer"]

log = get_logger(__name__)


class TokenHolder(Protocol):
    """A client that caches tenants' upstream tokens."""

    def credentials(self, tenant: TenantConfig) -> list[Credential]:
        """The credentials whose tokens `restore` takes."""

    def restore(self, tenant: TenantConfig, loaded: dict[str, Opened]) -> int:
        """Hold the tenant's tokens from `loaded` that are fresh enough; how many."""


class TokenWarmer:
    """Seeds the clients' token caches for tenants about to start."""

    def __init__(self, *, stash: TokenStash, holders: Mapping[str, TokenHolder]) -> None:
        self._stash = stash
        self._holders = holders  # by tenant protocol: "legacy", "api", "wecom-mail"

    async def warm(self, tenants: Sequence[TenantConfig]) -> int:
        """Load the tenants' stored tokens (one store call) into their clients; how many
        are held. Never raises for want of a store: the tokens are then fetched."""
        try:
            held = [(t, h) for t in tenants if (h := self._holders.get(t.protocol)) is not None]
            loaded = await self._stash.load([c for t, h in held for c in h.credentials(t)])
            restored = sum(h.restore(t, loaded) for t, h in held) if loaded else 0
        except Exception as exc:  # a failed warm-up only costs token requests
            # The tenants must start anyway; the type names the bug without any value.
            log.error("upstream_tokens_restore_failed", error_type=type(exc).__name__)
            return 0
        log.info("upstream_tokens_restored", tenants=len(tenants), restored=restored)
        return restored
