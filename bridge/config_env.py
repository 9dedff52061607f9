"""`[bridge]` defaults taken from the environment when the config file leaves a key unset.

The container image sets `EXMAIL_BRIDGE_HTTP_LISTEN=0.0.0.0:9464` and
`EXMAIL_BRIDGE_PUBLIC_LISTEN=0.0.0.0:8080`: inside a container the bridge must listen on
every interface for a published port to reach it, while the same config file run on a host
keeps the safe loopback default. A key the file sets always wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ENV_DEFAULTS", "with_env_defaults"]

# `[bridge]` key -> the environment variable that supplies its default.
ENV_DEFAULTS: Mapping[str, str] = {
    "http_listen": "EXMAIL_BRIDGE_HTTP_LISTEN",
    "public_listen": "EXMAIL_BRIDGE_PUBLIC_LISTEN",
}


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
