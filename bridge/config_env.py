"""The config file and the environment: where the file is, `${VAR}`, listener defaults.

Kept apart from `bridge.config` (and free of pydantic) so that `exmail-bridge healthcheck`,
which runs every few seconds as a container probe, can find the listener cheaply with the
very rules the bridge uses.

The container image sets `EXMAIL_BRIDGE_HTTP_LISTEN=0.0.0.0:9464` and
`EXMAIL_BRIDGE_PUBLIC_LISTEN=0.0.0.0:8080`: inside a container the bridge must listen on
every interface for a published port to reach it, while the same config file run on a host
keeps the safe loopback default. A key the file sets always wins.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError

__all__ = [
    "DEFAULT_HTTP_LISTEN",
    "ENV_CONFIG",
    "ENV_DEFAULTS",
    "LISTEN_HINT",
    "config_path",
    "expand",
    "is_listen_address",
    "read_toml",
    "with_env_defaults",
]

ENV_CONFIG = "EXMAIL_BRIDGE_CONFIG"
DEFAULT_HTTP_LISTEN = "127.0.0.1:9464"
LISTEN_HINT = "must be host:port, e.g. 127.0.0.1:9464"
# `[bridge]` key -> the environment variable that supplies its default.
ENV_DEFAULTS: Mapping[str, str] = {
    "http_listen": "EXMAIL_BRIDGE_HTTP_LISTEN",
    "public_listen": "EXMAIL_BRIDGE_PUBLIC_LISTEN",
}
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HALF_ENV_RE = re.compile(r"\$\{[A-Za-z_]")  # what is left of a reference with no "}"


def config_path(path: str | os.PathLike[str] | None) -> Path:
    """`-c`, else `$EXMAIL_BRIDGE_CONFIG`, else ./config.toml."""
    return Path(path or os.environ.get(ENV_CONFIG) or "config.toml")


def is_listen_address(value: str) -> bool:
    """`host:port` with a port in 0..65535 (the host is checked when binding)."""
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and int(port) < 65536)


def read_toml(target: Path) -> dict[str, Any]:
    """The parsed file; ConfigError naming the file when it cannot be read or parsed."""
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {target}: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{target} is not valid TOML: {exc}") from exc


def expand(value: str, path: str, env: Mapping[str, str]) -> str:
    """`value` with each `${VAR}` / `${VAR:-default}` replaced; ConfigError if VAR is unset."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable {name} is not set")

    # A typo like "${KEY" would otherwise become the literal value (a wrong secret).
    if _HALF_ENV_RE.search(_ENV_RE.sub("", value)):
        raise ConfigError(path, "a ${VAR} reference is not closed with }")
    return _ENV_RE.sub(one, value)


def with_env_defaults(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`data` with the unset `[bridge]` keys filled from `env`; and `bridge.<key>` -> variable."""
    bridge = data.get("bridge", {})
    if not isinstance(bridge, Mapping):
        return dict(data), {}
    used = {k: var for k, var in ENV_DEFAULTS.items() if k not in bridge and env.get(var)}
    if not used:
        return dict(data), {}
    filled = {**bridge, **{key: env[var] for key, var in used.items()}}
    return {**data, "bridge": filled}, {f"bridge.{key}": var for key, var in used.items()}
