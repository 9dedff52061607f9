"""Per-token rate limits on /v1/."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import ApiHarness


@pytest.fixture
def api_settings() -> dict[str, Any]:
    """A tight rate budget."""
    return {"rate_per_s": 0.5, "rate_burst": 3}


async def test_a_token_over_its_budget_gets_429_with_retry_after(api: ApiHarness) -> None:
    """Past the burst a token is refused with 429 and Retry-After; others are not."""
    answers = [(await api.call("GET", "/v1/subscriptions"))[0] for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    status, problem, headers = await api.call("GET", "/v1/subscriptions")
    assert (status, problem["detail"]) == (429, "rate limit of this token exceeded")
    assert int(headers["Retry-After"]) >= 1
