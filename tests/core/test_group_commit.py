"""Group commit: the pushes of one socket read are committed together, all or nothing."""

from __future__ import annotations

import redis.asyncio as aioredis

from bridge.store.base import Delivery, Store
from tests.core.test_listener import CLIENT_ID, SINK, claim_all, running, until
from tests.plugins.sim import ExmailSim
from tests.plugins.store import StoreMaker

MAILS = 5


def _one_read(sim: ExmailSim) -> None:
    """Streamed answers, every queued push in one write: the client reads them together."""
    sim.state.configure(framing="ndjson", one_write=True, hold_s=30.0)


def _send(sim: ExmailSim, first: int, count: int) -> None:
    for n in range(first, first + count):
        sim.state.send_mail(CLIENT_ID, to=f"u{n}@acme.com", sender="a@b.cn", subject=f"m{n}")


async def _delivered(store: Store, count: int) -> list[Delivery]:
    found: list[Delivery] = []

    async def enough() -> bool:
        found.extend(await claim_all(store))
        return len(found) >= count

    await until(enough)
    return found


async def test_pushes_of_one_read_share_one_commit(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """Mails read from the socket together land in the outbox in one transaction."""
    _one_read(exmail_sim)
    _send(exmail_sim, 0, MAILS)  # queued before the listen: one answer carries all
    async with store_maker.open() as store:
        scripts_before = await _scripts_run(store_maker)
        async with running(exmail_sim, store):
            await until(lambda: _backlog_is(store, MAILS))
            scripts = await _scripts_run(store_maker) - scripts_before
        found = await _delivered(store, MAILS)
    assert sorted(d.event.data["subject"] for d in found) == [f"m{n}" for n in range(MAILS)]
    # One commit stamps every row with the same enqueue time; separate commits would not.
    assert len({d.enqueued_at for d in found}) == 1
    assert scripts == (1 if store_maker.redis_server else 0)  # Redis: one COMMIT for all


async def _backlog_is(store: Store, count: int) -> bool:
    return await store.backlog(SINK) == count


async def _scripts_run(maker: StoreMaker) -> int:
    """Lua scripts the test's Redis ran so far (0 for SQLite)."""
    if maker.redis_server is None:
        return 0
    probe = aioredis.Redis.from_url(maker.redis_server.url)
    try:
        evalsha = (await probe.info("commandstats")).get("cmdstat_evalsha", {})
    finally:
        await probe.aclose()
    return int(evalsha.get("calls", 0)) - int(evalsha.get("failed_calls", 0))


async def test_crash_mid_batch_loses_nothing(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """A commit failing part-way leaves nothing, is retried, and stores each push once."""
    _one_read(exmail_sim)
    async with store_maker.open() as store, running(exmail_sim, store) as run:
        await until(lambda: _state_is(run.board.get("acme"), "connected"))
        with store_maker.failing_commit():
            asked_before = len(run.sleeps.asked)
            _send(exmail_sim, 0, MAILS)

            async def retrying() -> bool:  # the store refused the batch at least twice
                return len(run.sleeps.asked) >= asked_before + 2

            await until(retrying)
            assert await store.backlog(SINK) == 0  # all or nothing: no half of the batch
        found = await _delivered(store, MAILS)
        assert await store.backlog(SINK) == MAILS  # once each, no duplicate
    assert sorted(d.event.data["subject"] for d in found) == [f"m{n}" for n in range(MAILS)]
    assert len({d.event.id for d in found}) == MAILS


async def _state_is(state: str | None, wanted: str) -> bool:
    return state == wanted
