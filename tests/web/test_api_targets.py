"""The SSRF rules with `[api] allow_private_targets` left false (the default)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import ApiHarness


@pytest.fixture
def api_settings() -> dict[str, Any]:
    """Private targets refused, as in production."""
    return {"allow_private_targets": False}


async def test_private_and_own_targets_are_refused(api: ApiHarness) -> None:
    """Loopback and private addresses, and the bridge itself, cannot be subscribed."""
    for url, reason in [
        (api.receiver.url("/hook"), "resolves to a private address"),
        ("http://10.1.2.3/hook", "resolves to a private address"),
        ("http://[::1]:8080/hook", "resolves to a private address"),
        (api.url("/v1/subscriptions"), "points at the bridge itself"),
        ("http://user:pw@example.com/", "must not carry credentials"),
    ]:
        status, problem, _ = await api.call("POST", "/v1/subscriptions", {"url": url})
        assert (status, reason in problem["detail"]) == (422, True), (url, problem)
