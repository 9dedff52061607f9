"""Bridge configs for the benchmarks, written as TOML the way an operator would."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bench.floor import client_id

__all__ = ["BridgeSetup", "bridge_toml", "tenant_name"]


def tenant_name(i: int) -> str:
    """The i-th bench tenant's name."""
    return f"t{i:05d}"


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeSetup:
    """What differs between bench runs of the bridge."""

    tenants: int
    sim_port: int
    http_port: int
    store: str
    startup_window_s: float = 10.0
    upstream_rate_per_s: float = 5000.0
    listen_hold_s: float = 120.0
    log_level: str = "warning"
    sinks: Sequence[str] = ()  # ready-made [[sinks]] tables
    instance_id: str = "bench"
    lease_ttl_s: float | None = None  # None: the bridge's default


def bridge_toml(setup: BridgeSetup) -> str:
    """A complete config.toml for `setup`."""
    sim = f"http://127.0.0.1:{setup.sim_port}"
    lines = [
        "[bridge]",
        f"store = {_q(setup.store)}",
        f'http_listen = "127.0.0.1:{setup.http_port}"',
        f'public_url = "http://127.0.0.1:{setup.http_port}"',
        f"instance_id = {_q(setup.instance_id)}",
        f"log_level = {_q(setup.log_level)}",
        'log_format = "json"',
        f"startup_window_s = {setup.startup_window_s}",
        f"upstream_rate_per_s = {setup.upstream_rate_per_s}",
        *([f"lease_ttl_s = {setup.lease_ttl_s}"] if setup.lease_ttl_s is not None else []),
        "",
        "[exmail]",
        f'token_url = "{sim}/cgi-bin/token"',
        f'api_base = "{sim}"',
        f"listen_hold_s = {setup.listen_hold_s}",
        "",
    ]
    for i in range(setup.tenants):
        lines += [
            "[[tenants]]",
            f'name = "{tenant_name(i)}"',
            f"client_id = {_q(client_id(i))}",
            'client_secret = "bench-key"',
            "",
        ]
    lines += [*setup.sinks]
    return "\n".join(lines) + "\n"
