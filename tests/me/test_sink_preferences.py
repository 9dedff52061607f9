"""The WeCom sink obeys members' preferences: hold, mute, VIP, and one digest at the end."""

from __future__ import annotations

import asyncio
from datetime import time
from unittest.mock import patch

from bridge.config import MqttSinkConfig, WebhookSinkConfig, parse_config
from bridge.delivery.preferences import Preferences, member_key
from bridge.delivery.preferences_release import HoldReleaser
from bridge.errors import StoreError
from bridge.events import unread_changed
from bridge.store.base import Store
from bridge.web.me_feature import MeFeature
from sinks.wecom import WecomSink
from tests.me.delivery import gated_sink, shanghai
from tests.plugins.store import StoreMaker
from tests.plugins.wecom import FakeClock, WecomSim
from tests.wecom.helpers import mail

BOB = member_key("wwsimcorp", "bob")
QUIET = Preferences(
    quiet_start=time(22, 0),
    quiet_end=time(7, 0),
    vip_senders=("*@board.acme.com",),
    muted_keywords=("[CI]",),
)


async def test_quiet_hours_hold_vip_passes_and_one_digest_follows(
    wecom_sim: WecomSim, store: Store
) -> None:
    """Quiet hours hold a mail, let a VIP pass, mute [CI], then release one digest card."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    await store.set_preferences(BOB, QUIET)
    async with gated_sink(wecom_sim, store, wall) as gated:
        await gated.commit(
            mail(mail_id="n1", subject="Quarterly report"),
            mail(mail_id="v1", subject="Board meeting", sender="chair@board.acme.com"),
            mail(mail_id="c1", subject="[CI] build failed"),
            mail(mail_id="n2", subject="Lunch?"),
        )
        [vip] = await gated.cards("bob", 1)
        await gated.settled()
        assert vip.body["title"] == "Board meeting"
        assert "通知设置" in vip.body["description"]
        assert [h.event.data["mail_id"] for h in await store.held("chat", BOB)] == ["n1", "n2"]
        states = {n.subject: n.state for n in await store.notices(BOB)}
        assert states == {
            "Quarterly report": "held",
            "Board meeting": "delivered",
            "[CI] build failed": "muted",
            "Lunch?": "held",
        }

        wall.advance(3600)  # 00:00: still quiet, nothing is released
        assert await gated.releaser.release_due() == 0
        wall.now_s = shanghai("2026-12-01 07:00")
        assert await gated.releaser.release_due() == 1
        cards = await gated.cards("bob", 2)
        await gated.settled()
    digest = cards[1].body
    assert digest["title"] == "2 封新邮件 / 2 new mails"
    assert "Lunch?" in digest["description"]
    assert "Quarterly report" in digest["description"]
    assert len(wecom_sim.state.messages("bob")) == 2
    assert await store.held("chat", BOB) == []
    assert {n.subject: n.state for n in await store.notices(BOB)}["Lunch?"] == "delivered"


async def test_held_mails_survive_a_restart(wecom_sim: WecomSim, store_maker: StoreMaker) -> None:
    """Mails held before a restart are released as one digest by the restarted bridge."""
    wall = FakeClock(shanghai("2026-11-30 23:30"))
    async with store_maker.open() as store:
        await store.set_preferences(BOB, QUIET)
        async with gated_sink(wecom_sim, store, wall) as gated:
            await gated.commit(mail(mail_id="a"), mail(mail_id="b"))
            await gated.settled()
    store_maker.restart()
    wall.now_s = shanghai("2026-12-01 07:01")
    async with store_maker.open() as store, gated_sink(wecom_sim, store, wall) as gated:
        assert await gated.releaser.release_due() == 1
        [card] = await gated.cards("bob", 1)
    assert card.body["title"] == "2 封新邮件 / 2 new mails"


async def test_a_release_repeated_after_a_crash_is_one_card(
    wecom_sim: WecomSim, store: Store
) -> None:
    """A digest committed twice (crash before the held mails were forgotten) is one card."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    await store.set_preferences(BOB, QUIET)
    async with gated_sink(wecom_sim, store, wall) as gated:
        await gated.commit(mail(mail_id="a"))
        await gated.settled()
        wall.now_s = shanghai("2026-12-01 08:00")
        held = await store.held("chat", BOB)
        await gated.releaser.release_due()
        for h in held:  # as if the first release had died before its unhold
            await store.hold("chat", BOB, h.event, h.held_at)
        await gated.releaser.release_due()
        await gated.cards("bob", 1)
        await gated.settled()
    assert len(wecom_sim.state.messages("bob")) == 1
    assert await store.held("chat", BOB) == []


async def test_ending_quiet_hours_early_releases_at_once(wecom_sim: WecomSim, store: Store) -> None:
    """Clearing quiet hours on the page releases what they held at the next check."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    await store.set_preferences(BOB, QUIET)
    async with gated_sink(wecom_sim, store, wall) as gated:
        await gated.commit(mail(mail_id="a"))
        await gated.settled()
        assert await gated.releaser.release_due() == 0
        await store.set_preferences(BOB, Preferences())
        assert await gated.releaser.release_due() == 1
        await gated.cards("bob", 1)


async def test_without_preferences_every_mail_goes_at_once(
    wecom_sim: WecomSim, store: Store
) -> None:
    """A member who never saved preferences gets each mail as its own card, recorded."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    async with gated_sink(wecom_sim, store, wall) as gated:
        await gated.commit(mail(mail_id="a", subject="one"), mail(mail_id="b", subject="two"))
        cards = await gated.cards("bob", 2)
    assert [c.body["title"] for c in cards] == ["one", "two"]
    assert [n.state for n in await store.notices(BOB)] == ["delivered", "delivered"]


async def test_webhook_mqtt_and_other_corps_are_not_gated(
    store: Store, wecom_sim: WecomSim
) -> None:
    """Only WeCom sinks of the page's corp get a gate; webhook and MQTT sinks never do."""
    config = parse_config(
        {
            "sinks": [
                wecom_sim.sink_config().model_dump(mode="json") | {"corp_secret": "x"},
                wecom_sim.sink_config(name="other", corp_id="wwother").model_dump(mode="json")
                | {"corp_secret": "x"},
            ],
            "me": {"sink": "chat"},
        }
    )
    feature = MeFeature(store=store, page=None)
    assert feature.sink_extras(config.sink("chat")) == {}  # inert without [me]
    hook = WebhookSinkConfig.model_validate(
        {"name": "oa", "type": "webhook", "url": "http://x", "secret": "whsec_AAAA"}
    )
    bus = MqttSinkConfig.model_validate({"name": "bus", "type": "mqtt"})
    live = await MeFeature.create(config=config, store=store)
    assert live.sink_extras(hook) == {}
    assert live.sink_extras(bus) == {}
    assert live.sink_extras(config.sink("other")) == {}
    assert set(live.sink_extras(config.sink("chat"))) == {"gate", "settings_url"}


async def test_the_releaser_keeps_going_after_a_failing_round(
    wecom_sim: WecomSim, store: Store
) -> None:
    """A round that fails (store down, a bug) is logged; the next round releases."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    await store.set_preferences(BOB, QUIET)
    async with gated_sink(wecom_sim, store, wall) as gated:
        await gated.commit(mail(mail_id="a"))
        await gated.settled()
        wall.now_s = shanghai("2026-12-01 07:00")
        real = store.held_members
        calls = 0

        async def flaky(sink: str) -> list[str]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StoreError("connection reset", backend="test", op="held_members")
            if calls == 2:
                raise RuntimeError("a bug")
            return await real(sink)

        releaser = HoldReleaser(store=store, sink="chat", every_s=0.01, clock=wall)
        with patch.object(store, "held_members", flaky):
            task = asyncio.create_task(releaser.run())
            try:
                await gated.cards("bob", 1)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert calls >= 3


async def test_preferences_saved_on_one_replica_apply_on_another(
    wecom_sim: WecomSim, redis_store_maker: StoreMaker
) -> None:
    """Preferences saved through one replica's store hold the very next mail on another."""
    wall = FakeClock(shanghai("2026-11-30 23:00"))
    async with (
        redis_store_maker.open() as page_side,
        redis_store_maker.open() as sink_side,
        gated_sink(wecom_sim, sink_side, wall) as gated,
    ):
        await gated.commit(mail(mail_id="a", subject="first"))
        await gated.cards("bob", 1)
        await page_side.set_preferences(BOB, QUIET)
        await gated.commit(mail(mail_id="b", subject="second"))
        await gated.settled()
        held = await sink_side.held("chat", BOB)
    assert [h.event.data["mail_id"] for h in held] == ["b"]
    assert len(wecom_sim.state.messages("bob")) == 1


async def test_a_plain_text_notice_links_the_page_too(wecom_sim: WecomSim) -> None:
    """A tenant without one-click mail gets a text message; it also links "通知设置"."""
    wecom_sim.state.add_member("bob")
    sink = WecomSink(
        config=wecom_sim.sink_config(users={"a@hooli.com": "bob"}),
        link_for=lambda _: None,
        settings_url="http://bridge.test/me",
    )
    rise = unread_changed(
        tenant="hooli", mailbox="a@hooli.com", unread_count=4, previous=2, reason="poll"
    )
    await sink.start()
    try:
        assert await sink.send_batch([rise]) == [None]
    finally:
        await sink.aclose()
    [message] = wecom_sim.state.messages("bob")
    assert message.msgtype == "text"
    assert message.body["content"].endswith('<a href="http://bridge.test/me">通知设置</a>')
