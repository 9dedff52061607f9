"""`[api]` in config.toml: defaults, admin tokens from a file, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError


def test_defaults_keep_old_configs_working() -> None:
    """A config without [api] loads, with private targets refused and no admin tokens."""
    config = parse_config({}, env={})
    assert config.api.admin_tokens == ()
    assert config.api.allow_private_targets is False
    assert config.api.attempts_retention_s == 7 * 86400
    assert config.api.disable_after_s == 3 * 86400


def test_admin_tokens_file_holds_one_token_per_line(tmp_path: Path) -> None:
    """admin_tokens_file reads one token per line, blank lines ignored."""
    path = tmp_path / "admin"
    path.write_text("first-admin-token-0123\n\nsecond-admin-token-456\n", encoding="utf-8")
    config = parse_config({"api": {"admin_tokens_file": str(path)}}, env={})
    assert [t.get_secret_value() for t in config.api.admin_tokens] == [
        "first-admin-token-0123",
        "second-admin-token-456",
    ]


def test_a_short_admin_token_is_refused_naming_the_key() -> None:
    """A guessable admin token is a config error that names the key, not the value."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"api": {"admin_tokens": ["short"]}}, env={})
    assert str(caught.value) == "api.admin_tokens: each admin token must be at least 16 characters"
    assert "short" not in str(caught.value)
