"""A burst of mail to one member: folded into digests, never dropped by WeCom."""

from __future__ import annotations

import asyncio
import re

import pytest

from bridge.errors import SinkError
from bridge.events import Event
from sinks.wecom import WecomSink
from tests.plugins.wecom import WecomSim
from tests.wecom.helpers import mail, running_sink

_DIGEST_RE = re.compile(r"^(\d+) 封新邮件 / \d+ new mails$")


async def _dispatch(sink: WecomSink, sim: WecomSim, events: list[Event], size: int) -> None:
    """Deliver like the dispatcher: batches of `size`, retrying failures when they are due."""
    pending = events
    for _round in range(10):
        failed: list[Event] = []
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            results = await sink.send_batch(batch)
            failed += [e for e, r in zip(batch, results, strict=True) if r is not None]
            _assert_retryable([r for r in results if r is not None])
        if not failed:
            return
        sim.clock.advance(61.0)
        pending = failed
    pytest.fail("deliveries never finished")


def _assert_retryable(errors: list[SinkError]) -> None:
    for error in errors:
        assert error.retryable
        assert error.retry_after_s is not None
        assert 0 < error.retry_after_s <= 61


def _mails_represented(sim: WecomSim, userid: str) -> int:
    """How many mails the member's cards announce (a digest counts each of its mails)."""
    total = 0
    for sent in sim.state.messages(userid):
        match = _DIGEST_RE.match(sent.body["title"])
        total += int(match[1]) if match else 1
    return total


def _max_per_minute(sim: WecomSim, userid: str) -> int:
    stamps = [m.at for m in sim.state.messages(userid)]
    return max(sum(1 for t in stamps if start <= t < start + 60) for start in stamps)


@pytest.mark.parametrize("batch_size", [50, 10, 3, 1])
async def test_burst_of_fifty_is_folded_not_dropped(wecom_sim: WecomSim, batch_size: int) -> None:
    """50 mails to one member: <= 30 messages a minute, none dropped, every mail announced."""
    wecom_sim.state.add_member("bob")
    events = [mail(mail_id=f"m{i:02}", subject=f"Invoice {i:02}") for i in range(50)]
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        await _dispatch(sink, wecom_sim, events, batch_size)
    assert wecom_sim.state.dropped_messages("bob") == []
    assert _max_per_minute(wecom_sim, "bob") <= 25
    assert _mails_represented(wecom_sim, "bob") == 50


async def test_digest_lists_newest_mails_and_links_to_the_newest(wecom_sim: WecomSim) -> None:
    """A digest names the newest senders/subjects, counts the rest, links to the newest mail."""
    wecom_sim.state.add_member("bob")
    events = [mail(mail_id=f"m{i:02}", subject=f"关于项目{i:02}的长标题" * 3) for i in range(40)]
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        assert await sink.send_batch(events) == [None] * 40
    [digest] = wecom_sim.state.messages("bob")
    body = digest.body
    assert body["title"] == "40 封新邮件 / 40 new mails"
    assert body["url"] == "http://bridge.test/open/m39"
    assert "关于项目39" in body["description"]
    assert "more</div>" in body["description"]
    assert len(body["description"].encode()) <= 512


async def test_full_budget_defers_until_the_window_frees(wecom_sim: WecomSim) -> None:
    """Once a member's minute is used up, sends are retryable until the minute has passed."""
    wecom_sim.state.add_member("bob")
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}, per_member_per_min=3) as sink:
        for i in range(3):
            await sink.send(mail(mail_id=f"m{i}"))
        wecom_sim.clock.advance(20.0)
        with pytest.raises(SinkError) as caught:
            await sink.send(mail(mail_id="m3"))
        assert caught.value.retryable
        assert caught.value.retry_after_s == pytest.approx(40.0)
        wecom_sim.clock.advance(40.0)
        await sink.send(mail(mail_id="m3"))
    assert len(wecom_sim.state.messages("bob")) == 4


async def test_members_have_separate_budgets(wecom_sim: WecomSim) -> None:
    """One member's burst does not fold or delay another member's mail."""
    wecom_sim.state.add_member("bob")
    wecom_sim.state.add_member("eve")
    users = {"bob@acme.com": "bob", "eve@acme.com": "eve"}
    events = [mail(mail_id=f"b{i}") for i in range(30)] + [mail("eve@acme.com", "e0")]
    async with running_sink(wecom_sim, users=users) as sink:
        assert await sink.send_batch(events) == [None] * 31
    assert len(wecom_sim.state.messages("bob")) == 1
    [eve_card] = wecom_sim.state.messages("eve")
    assert eve_card.body["title"] == "Quarterly report"


async def test_concurrent_sends_never_overspend(wecom_sim: WecomSim) -> None:
    """Fifty concurrent single sends to one member: the budget holds, nothing is dropped."""
    wecom_sim.state.add_member("bob")
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        outcomes = await asyncio.gather(
            *(sink.send(mail(mail_id=f"m{i}")) for i in range(50)), return_exceptions=True
        )
    errors = [o for o in outcomes if o is not None]
    assert all(isinstance(e, SinkError) and e.retryable for e in errors)
    assert len(wecom_sim.state.messages("bob")) == 25 == 50 - len(errors)
    assert wecom_sim.state.dropped_messages("bob") == []
