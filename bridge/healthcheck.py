"""`exmail-bridge healthcheck`: probe the running bridge where its config says it listens.

The container's HEALTHCHECK, compose's healthcheck and the Kubernetes exec probes all call
this, so a config that moves `[bridge] http_listen` moves every probe with it. A probe runs
every few seconds, so it stays cheap: it reads only `http_listen`, with the bridge's own
rules for the file, `${VAR}` and the environment default (`bridge.config_env`), without
validating the whole config, and speaks stdlib HTTP. It never raises: one line and exit 1
on any failure (Docker reserves exit 2), nothing on stdout but `ok`.
"""

from __future__ import annotations

import http.client
import os
import sys
from dataclasses import dataclass

from bridge.config_env import (
    DEFAULT_HTTP_LISTEN,
    LISTEN_HINT,
    config_path,
    expand,
    is_listen_address,
    read_toml,
    with_env_defaults,
)
from bridge.errors import ConfigError

__all__ = ["Probe", "http_listen", "probe", "probe_target"]

# A wildcard bind is probed over loopback of the same family.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}


@dataclass(frozen=True, slots=True)
class Probe:
    """Where to probe: a host, a port and a path."""

    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        """The probed URL, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


def http_listen(path: str | None) -> str:
    """The config's `[bridge] http_listen`, as the bridge resolves it."""
    data, _ = with_env_defaults(read_toml(config_path(path)), os.environ)
    bridge = data.get("bridge", {})
    raw = bridge.get("http_listen", DEFAULT_HTTP_LISTEN) if isinstance(bridge, dict) else None
    value = expand(raw, "bridge.http_listen", os.environ) if isinstance(raw, str) else ""
    if not is_listen_address(value):
        raise ConfigError("bridge.http_listen", LISTEN_HINT)
    return value


def probe_target(listen: str, *, ready: bool) -> Probe:
    """The probe for a valid `host:port` listen address."""
    host, _, port = listen.rpartition(":")
    host = _WILDCARDS.get(host, host).strip("[]")
    return Probe(host=host, port=int(port), path="/readyz" if ready else "/healthz")


def _get_status(target: Probe, timeout_s: float) -> int:
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.request("GET", target.path, headers={"user-agent": "exmail-bridge-healthcheck"})
        return conn.getresponse().status
    finally:
        conn.close()


def probe(config: str | None, *, ready: bool, timeout_s: float) -> int:
    """0 when the bridge answers 200, else 1 with one line on stderr."""
    try:
        target = probe_target(http_listen(config), ready=ready)
    except ConfigError as exc:
        print(f"unhealthy: config error: {exc}", file=sys.stderr)
        return 1
    try:
        status = _get_status(target, timeout_s)
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        print(f"unhealthy: {target.url}: {reason}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {target.url} answered {status}", file=sys.stderr)
        return 1
    print("ok")
    return 0
