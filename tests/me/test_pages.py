"""The click-through's refusal pages share the /me page's look and speak plain words."""

from __future__ import annotations

from typing import get_args

import pytest

from bridge.clickthrough_pages import Reason, forbidden, unavailable


@pytest.mark.parametrize("reason", get_args(Reason))
def test_refusal_pages_say_what_happened_and_what_to_do(reason: str) -> None:
    """Each refusal is a styled page in Chinese and English, with a way on, no jargon."""
    response = forbidden(reason)  # type: ignore[arg-type]
    page = response.text or ""
    assert response.status == 403
    assert '<section class="error" role="alert">' in page
    assert "--accent" in page  # the page's own stylesheet
    assert 'lang="en"' in page
    assert "https://exmail.qq.com/" in page
    assert f"<small>{reason}</small>" not in page
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_unavailable_says_the_link_is_fine() -> None:
    """When Exmail or WeCom is down the page says the link itself is fine."""
    response = unavailable()
    assert response.status == 503
    assert "链接没有问题" in (response.text or "")
    assert "The link is fine" in (response.text or "")
