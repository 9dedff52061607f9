"""A subscription that fails every attempt for `disable_after_s` disables itself."""

from __future__ import annotations

import asyncio

import pytest

from bridge.delivery.subscriptions import SUBSCRIPTION_DISABLED
from tests.web.conftest import ApiHarness


@pytest.fixture
def api_settings() -> dict[str, object]:
    """Disable after failing every attempt for one second."""
    return {"disable_after_s": 1}


async def test_a_subscription_failing_for_too_long_is_disabled(
    api: ApiHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    """A subscription failing past disable_after_s is disabled, logged and announced."""
    created = await api.create()
    api.receiver.answer(503)
    await api.commit(api.event(1))
    await asyncio.sleep(1.1)
    await api.commit(api.event(2))

    async def disabled() -> bool:
        sub = await api.store.get_subscription(created["id"])
        return sub is not None and sub.disabled

    await api.until(disabled, "the auto-disable")
    sub = await api.store.get_subscription(created["id"])
    assert sub is not None
    assert sub.disabled_reason.startswith("failed every attempt since")
    status, shown, _ = await api.call("GET", f"/v1/subscriptions/{created['id']}")
    assert (status, shown["disabled"]) == (200, True)
    announced = [d.event for d in await api.store.claim("ops", limit=100, lease_s=30)]
    [notice] = [e for e in announced if e.type == SUBSCRIPTION_DISABLED]
    assert notice.data["subscription_id"] == created["id"]
    assert notice.data["url"] == api.receiver.url("/hook")
    logged = capsys.readouterr().out
    assert "subscription_disabled" in logged
    assert created["id"] in logged
