"""Sealed upstream tokens: only the credential's secret opens them, anything else misses."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.singleflight import SingleFlightCache
from bridge.store.sqlite import SqliteStore
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential, open_sealed, seal

CRED = Credential(key="exmail/acme/admin@acme.com", secret="s3cret-key")
TOKEN = "tok-abcdefghijklmnop"


def test_a_sealed_token_opens_with_its_credential() -> None:
    """Sealing then opening with the same credential gives the token and its expiry."""
    opened = open_sealed(CRED, seal(CRED, TOKEN, 1234.5))
    assert opened is not None
    assert (opened.token, opened.expires_at) == (TOKEN, 1234.5)


def test_the_sealed_bytes_do_not_carry_the_token() -> None:
    """Neither the token nor the secret can be read from the sealed bytes."""
    sealed = seal(CRED, TOKEN, 1234.5)
    assert TOKEN.encode() not in sealed
    assert CRED.secret.encode() not in sealed


def test_a_rotated_secret_or_another_key_misses() -> None:
    """A new secret, or the same bytes stored under another key, opens nothing."""
    sealed = seal(CRED, TOKEN, 1234.5)
    assert open_sealed(Credential(key=CRED.key, secret="rotated"), sealed) is None
    assert open_sealed(Credential(key="exmail/other/x", secret=CRED.secret), sealed) is None


def test_corrupt_or_forged_entries_miss() -> None:
    """A flipped byte, a truncated box, garbage or an empty value opens nothing, raising nothing."""
    sealed = seal(CRED, TOKEN, 1234.5)
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for bad in (flipped, sealed[:20], sealed[:13], b"", b"\x01", b"\x02" + sealed[1:], b"x" * 64):
        assert open_sealed(CRED, bad) is None


def test_credential_repr_hides_the_secret() -> None:
    """A credential printed in a log or a test failure shows its key, never its secret."""
    assert CRED.secret not in repr(CRED)
    assert TOKEN not in repr(open_sealed(CRED, seal(CRED, TOKEN, 1.0)))


async def _stashed(tmp_path: Path, lifetime_s: float, now: float) -> bool:
    """Whether a token saved with `lifetime_s` is seeded into a cache when loaded at `now`."""
    async with SqliteStore(path=tmp_path / "b.db", dedupe_window_s=60) as store:
        await TokenStash(store=store).save(CRED, TOKEN, lifetime_s)
        later = TokenStash(store=store, clock=lambda: now)
        cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=300)
        return later.restore(cache, "acme", CRED, await later.load([CRED]))


async def test_only_tokens_with_enough_life_left_are_seeded(tmp_path: Path) -> None:
    """A stored token is used only while it serves 5 min before its usual refresh."""
    now = time.time()
    assert await _stashed(tmp_path, 7200, now)
    assert not await _stashed(tmp_path, 7200, now + 7200 - 300 - 299)  # nearly expired
    assert not await _stashed(tmp_path, 7200, now + 7300)  # expired
    assert not await _stashed(tmp_path, 500, now)  # fetched nearly expired


def test_a_seed_never_replaces_a_fresh_value() -> None:
    """Seeding a key that holds a fresh value keeps that value."""
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=10)
    assert cache.seed("k", "first", 3600)
    assert not cache.seed("k", "second", 3600)
