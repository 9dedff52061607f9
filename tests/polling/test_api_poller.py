"""The `api` poller against the simulator and both real stores."""

from __future__ import annotations

from bridge import events
from bridge.simulator.exmail_newapi_http import NEWAPI
from bridge.store.base import Store
from tests.plugins.sim import ExmailSim
from tests.plugins.store import StoreMaker
from tests.polling.harness import (
    CORP,
    Polling,
    config_for,
    drain_events,
    polling,
    rounds_done,
    sim_post,
    until,
)

BOSS = "boss@globex.com"


async def _mail(sim: ExmailSim, to: str, n: int = 1) -> None:
    for _ in range(n):
        await sim_post(sim, "mail", {"tenant": CORP, "to": to, "from": "a@b.cn"})


async def _corp(sim: ExmailSim, *users: str) -> None:
    await sim_post(sim, "api/corps", {"corp_id": CORP})
    for user in users:
        await sim_post(sim, "api/users", {"tenant": CORP, "userid": user})


async def _after_rounds(run: Polling, n: int) -> None:
    start = run.poller.rounds

    async def done() -> bool:
        return await rounds_done(run, start + n)

    await until(done)


async def test_a_rise_is_announced_once(exmail_sim: ExmailSim, store: Store) -> None:
    """The first round records the count; a later rise is one exmail.mail.unread event."""
    await _corp(exmail_sim, BOSS)
    await _mail(exmail_sim, BOSS, 2)
    async with polling(config_for(exmail_sim, watch=[BOSS]), store) as run:
        await _after_rounds(run, 1)
        assert await drain_events(store, events.MAIL_UNREAD) == []
        await _mail(exmail_sim, BOSS)
        await _after_rounds(run, 3)
        [rise] = await drain_events(store, events.MAIL_UNREAD)
    assert rise.mailbox == BOSS
    assert dict(rise.data) | {"tenant": "globex"} == {
        "tenant": "globex",
        "mailbox": BOSS,
        "unread_count": 3,
        "previous": 2,
        "reason": "poll",
    }
    assert await store.get_baselines("globex") == {BOSS: 3}


async def test_mail_while_down_is_announced_once_after_restart(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """A restart's first round reconciles against the stored baseline: one event, not two."""
    await _corp(exmail_sim, BOSS)
    config = config_for(exmail_sim, watch=[BOSS])
    async with store_maker.open() as store, polling(config, store) as run:
        await _after_rounds(run, 1)
    await _mail(exmail_sim, BOSS, 4)  # no replica runs
    store_maker.restart()
    for expected in ([(0, 4, "reconcile")], []):
        async with store_maker.open() as store, polling(config, store) as run:
            await _after_rounds(run, 2)
            found = await drain_events(store, events.MAIL_UNREAD)
        got = [(e.data["previous"], e.data["unread_count"], e.data["reason"]) for e in found]
        assert got == expected


async def test_watch_patterns_resolve_against_the_directory(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """ "*@globex.com" polls every member the directory walk found, and only those."""
    await _corp(exmail_sim, "ann@globex.com", "bob@globex.com")
    await _mail(exmail_sim, "eve@other.com")
    config = config_for(exmail_sim, watch=["*@globex.com"])
    async with polling(config, store) as run:
        await _after_rounds(run, 1)
        await _mail(exmail_sim, "bob@globex.com")
        await _mail(exmail_sim, "eve@other.com")
        await _after_rounds(run, 2)
        rises = await drain_events(store, events.MAIL_UNREAD)
    assert [(e.mailbox, e.data["unread_count"]) for e in rises] == [("bob@globex.com", 1)]
    assert set(await store.get_baselines("globex")) == {"ann@globex.com", "bob@globex.com"}


async def test_directory_changes_are_announced_with_a_content_version(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """A walk that differs from the stored one is one directory event; an equal one is none."""
    await _corp(exmail_sim, "ann@globex.com")
    config = config_for(exmail_sim, exmail={"directory_interval_s": 0.1})
    found = []
    for change in ({"userid": "ann@globex.com"}, {"userid": "bob@globex.com"}, None):
        if change == {"userid": "bob@globex.com"}:
            await sim_post(exmail_sim, "api/users", {"tenant": CORP, **change})
            await sim_post(
                exmail_sim,
                "api/users",
                {"tenant": CORP, "userid": "ann@globex.com", "action": "remove"},
            )
        store_maker.restart()
        async with store_maker.open() as store, polling(config, store) as run:
            await _after_rounds(run, 3)
            found.append(await drain_events(store, events.DIRECTORY_CHANGED))
            stored = await store.get_directory("globex")
    [first], [second], [] = found
    assert (first.data["added"], first.data["removed"]) == (["ann@globex.com"], [])
    assert (second.data["added"], second.data["removed"]) == (
        ["bob@globex.com"],
        ["ann@globex.com"],
    )
    assert first.data["version"] != second.data["version"]
    assert stored is not None
    assert stored.version == second.data["version"]


async def test_a_periodic_walk_sees_a_new_member(exmail_sim: ExmailSim, store: Store) -> None:
    """Walks repeat every directory_interval_s while the poller runs."""
    await _corp(exmail_sim, "ann@globex.com")
    config = config_for(exmail_sim, exmail={"directory_interval_s": 0.1})
    async with polling(config, store) as run:
        await _after_rounds(run, 1)
        await drain_events(store)
        await sim_post(exmail_sim, "api/users", {"tenant": CORP, "userid": "carol@globex.com"})
        await _after_rounds(run, 3)
        [change] = await drain_events(store, events.DIRECTORY_CHANGED)
    assert (change.data["added"], change.data["removed"]) == (["carol@globex.com"], [])


async def test_newcount_with_required_dates_still_counts(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """When the server insists on begin_date/end_date the poller switches variant and goes on."""
    await _corp(exmail_sim, BOSS)
    exmail_sim.app[NEWAPI].settings.newcount_dates = "required"
    async with polling(config_for(exmail_sim, watch=[BOSS]), store) as run:
        await _after_rounds(run, 1)
        await _mail(exmail_sim, BOSS)
        await _after_rounds(run, 2)
        [rise] = await drain_events(store, events.MAIL_UNREAD)
    assert (rise.data["previous"], rise.data["unread_count"]) == (0, 1)


async def test_rate_limit_backs_off_at_least_as_asked(exmail_sim: ExmailSim, store: Store) -> None:
    """45009 on newcount backs the tenant off for at least the provider's 60 s, then resumes."""
    await _corp(exmail_sim, BOSS)
    await sim_post(exmail_sim, "api/faults", {"errcodes": {"mail/newcount": [45009]}})
    async with polling(config_for(exmail_sim, watch=[BOSS]), store) as run:
        await _after_rounds(run, 1)
        assert max(run.sleeps.asked) >= 60
        assert run.board.get("globex") == "connected"


async def test_bad_credentials_park_the_tenant(exmail_sim: ExmailSim, store: Store) -> None:
    """A refused gettoken parks the tenant for park_s, with no hot loop."""
    await _corp(exmail_sim, BOSS)
    await sim_post(exmail_sim, "api/faults", {"errcodes": {"gettoken": [40001, 40001]}})
    config = config_for(exmail_sim, watch=[BOSS], exmail={"park_s": 900})
    async with polling(config, store) as run:
        await _after_rounds(run, 1)
    assert run.sleeps.asked.count(900) == 2


async def test_a_large_directory_is_walked_whole(exmail_sim: ExmailSim, store: Store) -> None:
    """A 20,000-member answer (past max_body_bytes, in many TCP chunks) is read to its end."""
    await _corp(exmail_sim)
    corp = exmail_sim.app[NEWAPI].corp(CORP)
    assert corp is not None
    corp.users.update(
        {
            f"user{i:05d}@globex.com": {"name": f"成员 {i}", "department": [1, 2]}
            for i in range(20_000)
        }
    )
    async with polling(config_for(exmail_sim), store) as run:
        await _after_rounds(run, 1)
    stored = await store.get_directory("globex")
    assert stored is not None
    assert len(stored.members) == 20_000
