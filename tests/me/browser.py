"""Headless Chromium (Debian's `chromium`, never a downloaded build) through Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Page, async_playwright

__all__ = ["CHROMIUM", "PHONE", "phone_page"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}  # an everyday phone, in CSS pixels


@asynccontextmanager
async def phone_page(**context: str) -> AsyncIterator[Page]:
    """A fresh phone-sized page in headless Chromium (its own cookies)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            ctx = await browser.new_context(viewport=PHONE, device_scale_factor=2, **context)  # type: ignore[arg-type]
            page = await ctx.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            await browser.close()
