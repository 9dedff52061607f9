"""Shared fixtures: a real Redis and a real Mosquitto on free ports, started per session."""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.sim",
    "tests.plugins.wecom",
    "tests.plugins.store",
    "tests.plugins.e2e",
]
