"""The page in a real browser: sign in through the simulated QR page, set quiet hours, a
VIP sender and a muted keyword, and watch the WeCom sink obey them."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from bridge.delivery.preferences import member_key
from tests.me.browser import phone_page
from tests.me.delivery import gated_sink, shanghai
from tests.me.harness import serve_me
from tests.plugins.wecom import FakeClock, WecomSim
from tests.wecom.helpers import mail

BOB = member_key("wwsimcorp", "bob")


async def test_member_tunes_the_page_and_the_sink_obeys(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """Settings saved in the browser hold, pass, mute and then digest the member's mails."""
    wall = FakeClock(shanghai("2026-11-30 21:30"))
    async with (
        serve_me(wecom_sim, tmp_path, clock=wall, session_ttl_s=86400) as site,
        gated_sink(wecom_sim, site.store, wall) as gated,
        phone_page(locale="zh-CN") as page,
    ):
        await page.goto(f"{site.url}/me")
        await page.click('a.member[data-userid="bob"]')  # the simulated QR login page
        await page.wait_for_selector("#userid")
        assert await page.inner_text("#userid") == "bob"

        await page.fill("#quiet_start", "22:00")
        await page.fill("#quiet_end", "07:00")
        await page.fill("#vip_senders", "*@board.acme.com")
        await page.fill("#muted_keywords", "[CI]")
        await page.click("#save")
        await page.wait_for_selector(".flash.ok")

        wall.now_s = shanghai("2026-11-30 23:00")
        await gated.commit(
            mail(mail_id="n1", subject="Quarterly report"),
            mail(mail_id="v1", subject="Board meeting", sender='"Chair" <chair@board.acme.com>'),
            mail(mail_id="c1", subject="[CI] build failed"),
        )
        [vip] = await gated.cards("bob", 1)
        await gated.settled()
        assert vip.body["title"] == "Board meeting"
        assert [h.event.data["mail_id"] for h in await gated.store.held("chat", BOB)] == ["n1"]

        await page.goto(f"{site.url}/me")
        states = await _states(page)
        assert states == {
            "Quarterly report": "held",
            "Board meeting": "delivered",
            "[CI] build failed": "muted",
        }
        await page.screenshot(path=str(tmp_path / "me-quiet-hours.png"), full_page=True)

        wall.now_s = shanghai("2026-12-01 07:00")
        assert await gated.releaser.release_due() == 1
        cards = await gated.cards("bob", 2)
        await gated.settled()
        assert cards[1].body["title"] == "1 封新邮件 / 1 new mails"
        assert "Quarterly report" in cards[1].body["description"]
        assert len(wecom_sim.state.messages("bob")) == 2

        await page.reload()
        states = await _states(page)
        assert states["Quarterly report"] == "delivered"
        assert states["[CI] build failed"] == "muted"
        await page.screenshot(path=str(tmp_path / "me.png"), full_page=True)
    assert (tmp_path / "me.png").stat().st_size > 10_000


async def _states(page: Page) -> dict[str, str]:
    """Subject -> state of each line in "recent notifications"."""
    found: dict[str, str] = {}
    for item in await page.query_selector_all("li.notice"):
        subject = await (await item.query_selector(".subject")).inner_text()  # type: ignore[union-attr]
        found[subject] = str(await item.get_attribute("data-state"))
    return found
