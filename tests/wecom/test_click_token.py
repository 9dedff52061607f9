"""Click tokens: signed, expiring, URL-safe, and refused for distinct reasons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.clickthrough import ClickSigner, InvalidClickToken, load_click_key
from bridge.config import BridgeSection
from bridge.store.sqlite import SqliteStore
from tests.wecom.helpers import mail

KEY = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def _signer(key: bytes = KEY) -> ClickSigner:
    return ClickSigner(key=key, public_url="https://bridge.acme.com/", ttl_s=3600)


def test_round_trip() -> None:
    """A token verifies to the tenant, mailbox and mail id it was signed for."""
    token = _signer().sign("acme", "bob@acme.com", "ZC4028-FPiX", now=NOW)
    claim = _signer().verify(token, now=NOW + 10)
    assert (claim.tenant, claim.mailbox, claim.mail_id) == ("acme", "bob@acme.com", "ZC4028-FPiX")
    assert claim.expires_at == int(NOW + 3600)


def test_token_is_url_safe_and_compact() -> None:
    """Tokens use only base64url characters and one dot, and stay short."""
    token = _signer().sign("acme", "张三@acme.com", "m" * 40, now=NOW)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert len(token) < 200


def test_link_for_an_event() -> None:
    """link_for builds `{public_url}/open/<token>` from the event's tenant, mailbox and id."""
    link = _signer().link_for(mail("bob@acme.com", "m9"))
    assert link.startswith("https://bridge.acme.com/open/")
    claim = _signer().verify(link.rsplit("/", 1)[1])
    assert (claim.tenant, claim.mailbox, claim.mail_id) == ("acme", "bob@acme.com", "m9")


def test_expired_token_is_refused() -> None:
    """A token past its lifetime is refused as expired."""
    token = _signer().sign("acme", "bob@acme.com", "m1", now=NOW)
    with pytest.raises(InvalidClickToken) as caught:
        _signer().verify(token, now=NOW + 3600)
    assert caught.value.reason == "expired"


def test_tampered_payload_is_forged() -> None:
    """Changing the claim (another mailbox) without the key is refused as forged."""
    token = _signer().sign("acme", "bob@acme.com", "m1", now=NOW)
    other = _signer().sign("acme", "boss@acme.com", "m1", now=NOW)
    spliced = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(InvalidClickToken) as caught:
        _signer().verify(spliced, now=NOW)
    assert caught.value.reason == "forged"


def test_other_key_is_forged() -> None:
    """A token signed with another key is refused as forged."""
    token = _signer(b"another key of enough length!!").sign("acme", "b@a.c", "m", now=NOW)
    with pytest.raises(InvalidClickToken) as caught:
        _signer().verify(token, now=NOW)
    assert caught.value.reason == "forged"


@pytest.mark.parametrize("token", ["", "nodot", ".sig", "payload.", "a.b.c!", "%%%.%%%"])
def test_garbage_is_malformed_or_forged(token: str) -> None:
    """Garbage never verifies; it is refused as malformed or forged."""
    with pytest.raises(InvalidClickToken) as caught:
        _signer().verify(token, now=NOW)
    assert caught.value.reason in {"malformed", "forged"}


def test_short_key_is_a_programming_error() -> None:
    """A key under 16 bytes is refused at construction."""
    with pytest.raises(ValueError, match="16 bytes"):
        ClickSigner(key=b"short", public_url="http://x", ttl_s=60)


async def test_configured_click_secret_wins_over_the_store() -> None:
    """`[bridge] click_secret` is the key when set (the store is not consulted)."""
    bridge = BridgeSection.model_validate({"click_secret": "s" * 32})
    async with SqliteStore(path=Path(":memory:"), dedupe_window_s=60) as store:
        assert await load_click_key(bridge, store) == b"s" * 32


async def test_generated_key_is_kept_in_the_store(tmp_path: Path) -> None:
    """Without click_secret a random key is generated once and survives a restart."""
    bridge, path = BridgeSection(), tmp_path / "bridge.db"
    async with SqliteStore(path=path, dedupe_window_s=60) as store:
        first = await load_click_key(bridge, store)
    async with SqliteStore(path=path, dedupe_window_s=60) as store:
        second = await load_click_key(bridge, store)
    assert first == second
    assert len(first) == 32
