"""`[bridge]` listen addresses default from the environment (the container image sets them)."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError

IMAGE_ENV = {
    "EXMAIL_BRIDGE_HTTP_LISTEN": "0.0.0.0:9464",
    "EXMAIL_BRIDGE_PUBLIC_LISTEN": "0.0.0.0:8080",
}


def test_unset_keys_take_the_environment() -> None:
    """With neither key in the file, both listeners come from the environment."""
    bridge = parse_config({"bridge": {}}, env=IMAGE_ENV).bridge
    assert (bridge.http_listen, bridge.public_listen) == ("0.0.0.0:9464", "0.0.0.0:8080")


def test_keys_in_the_file_win() -> None:
    """A key the file sets is never overridden by the environment."""
    data = {"bridge": {"http_listen": "127.0.0.1:1", "public_listen": "127.0.0.1:2"}}
    bridge = parse_config(data, env=IMAGE_ENV).bridge
    assert (bridge.http_listen, bridge.public_listen) == ("127.0.0.1:1", "127.0.0.1:2")


def test_without_the_environment_defaults_stay_on_loopback() -> None:
    """No variables and no keys: loopback ops listener, no separate public listener."""
    bridge = parse_config({}, env={}).bridge
    assert (bridge.http_listen, bridge.public_listen) == ("127.0.0.1:9464", None)


def test_a_bad_variable_is_named_in_the_error() -> None:
    """An invalid value from the environment names the variable, not only the key."""
    with pytest.raises(ConfigError) as err:
        parse_config({}, env={"EXMAIL_BRIDGE_PUBLIC_LISTEN": "8080"})
    assert str(err.value) == (
        "bridge.public_listen (from $EXMAIL_BRIDGE_PUBLIC_LISTEN): "
        "must be host:port, e.g. 127.0.0.1:9464"
    )


def test_empty_variable_counts_as_unset() -> None:
    """An empty variable leaves the built-in default in place."""
    assert parse_config({}, env={"EXMAIL_BRIDGE_HTTP_LISTEN": ""}).bridge.http_listen == (
        "127.0.0.1:9464"
    )
