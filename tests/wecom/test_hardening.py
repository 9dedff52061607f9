"""Issue 10 (WeCom): a batch deadline never resends a sent card; replicas share the budget."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from bridge import metrics
from bridge.dispatch import Dispatcher
from bridge.errors import SinkError
from bridge.simulator.exmail import site_port, start_site
from bridge.store.base import Routed, Store
from sinks.wecom import WecomSink
from sinks.wecom_budget import MemberBudget, StoreBudget
from sinks.wecom_members import MemberDirectory
from tests.core.test_listener import until
from tests.plugins.store import StoreMaker
from tests.plugins.wecom import WecomSim
from tests.wecom.helpers import fake_link, mail, running_sink


async def _empty(store: Store, sink: str) -> bool:
    return await store.backlog(sink) == 0


async def test_batch_deadline_does_not_resend_sent_cards(store: Store, wecom_sim: WecomSim) -> None:
    """Slow answers cut a batch: only the card in flight may repeat, never the sent ones."""
    wecom_sim.state.add_member("bob")
    wecom_sim.state.answer_delay_s = 0.3
    config = wecom_sim.sink_config(users={"bob@acme.com": "bob"}, timeout_s=0.5)
    sink = WecomSink(config=config, link_for=fake_link, clock=wecom_sim.clock)
    await sink.start()
    events = [mail(mail_id=f"m{i}", subject=f"s{i}") for i in range(8)]
    await store.commit("acme", [Routed(event=e, sinks=("chat",)) for e in events])
    dispatcher = Dispatcher(
        sink=sink, store=store, retry_s=[0, 0, 0, 0, 0, 0], concurrency=8, timeout_s=0.5
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        await until(lambda: _empty(store, "chat"), timeout_s=30)
    finally:
        dispatcher.stop()
        await task
        await sink.aclose()
    cards = Counter(m.body["title"] for m in wecom_sim.state.messages("bob"))
    assert set(cards) == {f"s{i}" for i in range(8)}
    rounds = 8  # at most one card in flight is cut per batch
    assert sum(cards.values()) - 8 < rounds
    assert max(cards.values()) <= 2
    assert await store.dead_count("chat") == 0


async def test_replicas_together_stay_under_the_member_budget(
    store_maker: StoreMaker, wecom_sim: WecomSim
) -> None:
    """Two sinks on two store handles share bob's 25-a-minute budget: WeCom drops nothing."""
    wecom_sim.state.add_member("bob")
    config = wecom_sim.sink_config(users={"bob@acme.com": "bob"})
    async with store_maker.open() as one, store_maker.open() as two:
        sinks = [
            WecomSink(
                config=config,
                link_for=fake_link,
                clock=wecom_sim.clock,
                budget=StoreBudget(store=handle, scope="sim", per_min=25),
            )
            for handle in (one, two)
        ]
        for n, sink in enumerate(sinks):
            await sink.start()
            batch = [mail(mail_id=f"r{n}m{i}", subject=f"r{n}s{i}") for i in range(20)]
            results = await sink.send_batch(batch)
            assert results == [None] * 20  # the second one folds its 20 into a digest
            await sink.aclose()
    assert len(wecom_sim.state.messages("bob")) == 21
    assert wecom_sim.state.dropped_messages("bob") == []


async def test_member_budget_forgets_quiet_members() -> None:
    """The in-process budget keeps only members written to within the hour."""
    now = [0.0]
    budget = MemberBudget(per_min=25, clock=lambda: now[0])
    for i in range(1000):
        await budget.take(f"user{i}", 1)
    assert len(budget) == 1000
    now[0] = 3601.0
    await budget.take("late", 1)
    assert len(budget) == 1


async def test_unknown_errcode_is_labelled_other(wecom_sim: WecomSim) -> None:
    """An errcode outside the known set is counted under code="other", never its own value."""
    wecom_sim.state.add_member("bob")
    wecom_sim.state.inject(987654, endpoint="message/send")
    labels = {"endpoint": "wecom/message/send"}

    def count(code: str) -> float:
        sample = metrics.REGISTRY.get_sample_value(
            "exmail_bridge_upstream_errors_total", {**labels, "code": code}
        )
        return sample or 0.0

    before = count("other")
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        [result] = await sink.send_batch([mail()])
    assert result is not None
    assert count("other") - before == 1
    assert count("987654") == 0


async def test_member_cache_is_bounded(wecom_sim: WecomSim) -> None:
    """Lookups of many unknown mailboxes keep at most `max_entries` cached answers."""
    wecom_sim.state.add_member("bob", "bob@acme.com")
    async with running_sink(wecom_sim) as sink:
        members = MemberDirectory(
            api=sink.api, users={}, lookup_email=True, clock=wecom_sim.clock, max_entries=5
        )
        for i in range(20):
            assert await members.userid_for(f"nobody{i}@acme.com") is None
        assert await members.userid_for("bob@acme.com") == "bob"
        assert len(members) == 5
        assert await members.userid_for("bob@acme.com") == "bob"  # the newest stays cached
    assert wecom_sim.state.count("user/get_userid_by_email") == 21


@asynccontextmanager
async def _wecom_answering_token(body: str) -> AsyncIterator[tuple[str, Counter[str]]]:
    """A real local WeCom whose gettoken answers `body`; its URL and the calls it got."""
    calls: Counter[str] = Counter()

    async def gettoken(_: web.Request) -> web.StreamResponse:
        calls["gettoken"] += 1
        return web.Response(text=body, content_type="application/json")

    async def send(request: web.Request) -> web.StreamResponse:
        calls[f"send:{request.query.get('access_token', '')}"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": "m"})

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_post("/cgi-bin/message/send", send)
    runner = await start_site(app, host="127.0.0.1", port=0)
    try:
        yield f"http://127.0.0.1:{site_port(runner)}", calls
    finally:
        await runner.cleanup()


async def test_a_sloppy_token_lifetime_keeps_one_token(wecom_sim: WecomSim) -> None:
    """A gettoken answer whose expires_in is not a number still yields one cached token."""
    body = '{"errcode":0,"access_token":"tok","expires_in":"soon"}'
    async with _wecom_answering_token(body) as (url, calls):
        config = wecom_sim.sink_config(api_base=url, users={"bob@acme.com": "bob"}, oauth=False)
        sink = WecomSink(config=config, link_for=fake_link, clock=wecom_sim.clock)
        await sink.start()
        try:
            await sink.send(mail(mail_id="m1"))
            await sink.send(mail(mail_id="m2"))
        finally:
            await sink.aclose()
    assert calls == Counter({"gettoken": 1, "send:tok": 2})


async def test_a_token_answer_without_a_token_sends_nothing(wecom_sim: WecomSim) -> None:
    """gettoken answering errcode 0 but no access_token is a retryable failure, no bare send."""
    async with _wecom_answering_token('{"errcode":0,"errmsg":"ok"}') as (url, calls):
        config = wecom_sim.sink_config(api_base=url, users={"bob@acme.com": "bob"}, oauth=False)
        sink = WecomSink(config=config, link_for=fake_link, clock=wecom_sim.clock)
        await sink.start()
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send(mail())
        finally:
            await sink.aclose()
    assert caught.value.retryable
    assert calls == Counter({"gettoken": 1})
