"""`[me]`: optional, names a wecom sink (or picks the only one), bad values named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError


def _wecom(name: str, corp_id: str = "wwcorp") -> dict[str, Any]:
    return {"name": name, "type": "wecom", "corp_id": corp_id, "corp_secret": "s", "agent_id": 1}


def test_without_me_the_page_is_off() -> None:
    """A config without [me] keeps working and has no page."""
    assert parse_config({"sinks": [_wecom("chat")]}).me is None


def test_the_only_wecom_sink_is_the_default() -> None:
    """With one wecom sink, [me] needs no `sink`; defaults fill the rest."""
    config = parse_config({"sinks": [_wecom("chat")], "me": {}})
    assert config.me_sink().name == "chat"
    assert config.me is not None
    assert config.me.session_ttl_s == 8 * 3600


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ({"sinks": [_wecom("a"), _wecom("b")], "me": {}}, "me.sink", "required"),
        ({"sinks": [_wecom("a")], "me": {"sink": "oa"}}, "me.sink", "not a sink of type wecom"),
        ({"sinks": [], "me": {}}, "me.sink", "required"),
        ({"sinks": [_wecom("a")], "me": {"qr_login_url": "ftp://x"}}, "me.qr_login_url", "http"),
        ({"sinks": [_wecom("a")], "me": {"session_ttl_s": 0}}, "me.session_ttl_s", "greater"),
        ({"sinks": [_wecom("a")], "me": {"colour": "red"}}, "me.colour", "unknown key"),
    ],
)
def test_bad_me_sections_name_the_key(table: dict[str, Any], key: str, reason: str) -> None:
    """Each mistake in [me] is one error naming the key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(table)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_session_secret_may_come_from_a_file(tmp_path: Path) -> None:
    """`session_secret_file` reads the secret like every other `<key>_file`."""
    secret = tmp_path / "me.secret"
    secret.write_text("a-long-enough-session-secret\n")
    config = parse_config({"sinks": [_wecom("a")], "me": {"session_secret_file": str(secret)}})
    assert config.me is not None
    assert config.me.session_secret is not None
    assert config.me.session_secret.get_secret_value() == "a-long-enough-session-secret"
