"""The store's contract for upstream access tokens kept across restarts.

Tencent blocks clients that call `gettoken` too often, so every token the bridge fetches
is kept in the store, sealed (`bridge.tokenvault`): the store only ever sees ciphertext
it cannot open, under a key naming the credential (`exmail/<tenant>/<client_id>`, ...).
A restarted bridge, or a replica taking tenants over, loads the tokens of every tenant it
starts in one call. Both backends implement it (as mixins) and pass the same contract
tests (`tests/store/test_contract_upstream_tokens.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["LOAD_CHUNK", "UpstreamTokenStore"]

LOAD_CHUNK = 500  # keys per `IN (...)` list or MGET within the one load call


class UpstreamTokenStore(Protocol):
    """Sealed upstream tokens by credential key, each forgotten when it expires."""

    async def load_upstream_tokens(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The sealed token stored under each of `keys` that has not expired (keys with
        none are absent), read in one call however many keys there are."""

    async def save_upstream_token(self, key: str, sealed: bytes, expires_at: float) -> None:
        """Replace the sealed token under `key`; it is forgotten at unix time `expires_at`."""
