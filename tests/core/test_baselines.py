"""Store-backed unread baselines: pure comparisons, and the legacy listener across restarts."""

from __future__ import annotations

from bridge import baselines, events
from bridge.config import TenantConfig
from bridge.store.base import Store
from tests.core.test_listener import CLIENT_ID, claim_all, running, until
from tests.plugins.sim import ExmailSim
from tests.plugins.store import StoreMaker

BOSS = "boss@acme.com"


def test_resolve_watch_expands_patterns_against_known_mailboxes() -> None:
    """Plain entries stay; patterns pick the known mailboxes they match, case-insensitively."""
    known = ["Ann@Globex.com", "bob@globex.com", "eve@acme.com"]
    watch = ["boss@acme.com", "*@globex.com"]
    assert baselines.resolve_watch(watch, known) == [
        "ann@globex.com",
        "bob@globex.com",
        "boss@acme.com",
    ]
    assert baselines.resolve_watch([], known) == []


def test_unread_rises_announce_only_rises_over_a_known_baseline() -> None:
    """A rise is announced with its previous count; a fall, a tie or a new mailbox is not."""
    counts = {"A@x.com": 5, "b@x.com": 1, "c@x.com": 2, "new@x.com": 9}
    stored = {"a@x.com": 3, "b@x.com": 4, "c@x.com": 2}
    [rise] = baselines.unread_rises("acme", counts, stored, reason="reconcile")
    assert (rise.mailbox, rise.data["previous"], rise.data["unread_count"]) == ("a@x.com", 3, 5)
    assert rise.data["reason"] == "reconcile"
    assert baselines.changed_counts(counts, stored) == {"a@x.com": 5, "b@x.com": 1, "new@x.com": 9}


def test_watched_count_matches_plain_entries_and_patterns() -> None:
    """Only watched mailboxes with a known count yield a baseline."""
    assert baselines.watched_count(["*@acme.com"], "Bob@acme.com", 2) == {"bob@acme.com": 2}
    assert baselines.watched_count(["boss@acme.com"], "bob@acme.com", 2) == {}
    assert baselines.watched_count(["bob@acme.com"], "bob@acme.com", None) == {}


def _watching(sim: ExmailSim) -> TenantConfig:
    return sim.tenant_config().model_copy(update={"watch": (BOSS,)})


async def _reconciled(sim: ExmailSim, store: Store) -> list[events.Event]:
    """Run a listener until it has reconciled once; the unread events it committed."""
    async with running(sim, store, tenant=_watching(sim)) as run:
        await until(lambda: _polled_twice(run.listener.polls))
        found = [d.event for d in await claim_all(store)]
    return [e for e in found if e.type == events.MAIL_UNREAD]


async def _polled_twice(polls: int) -> bool:
    return polls >= 2


async def test_mail_that_arrived_while_down_is_announced_once(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """The first reconcile after a restart announces the rise since the stored baseline, once."""
    exmail_sim.state.add_user(CLIENT_ID, BOSS)
    exmail_sim.state.tenant(CLIENT_ID).unread[BOSS] = 3
    async with store_maker.open() as store:
        assert await _reconciled(exmail_sim, store) == []  # first start: records the baseline
    exmail_sim.state.tenant(CLIENT_ID).unread[BOSS] = 5  # while no bridge runs: no push
    store_maker.restart()
    async with store_maker.open() as store:
        [rise] = await _reconciled(exmail_sim, store)
        assert (rise.data["previous"], rise.data["unread_count"]) == (3, 5)
        assert rise.data["reason"] == "reconcile"
        assert await store.get_baselines("acme") == {BOSS: 5}
    async with store_maker.open() as store:
        assert await _reconciled(exmail_sim, store) == []  # nothing new: nothing again


async def test_a_pushed_mail_moves_the_baseline(
    exmail_sim: ExmailSim, store_maker: StoreMaker
) -> None:
    """A mail announced by push stores its count, so the next start does not announce it again."""
    exmail_sim.state.add_user(CLIENT_ID, BOSS)
    exmail_sim.state.tenant(CLIENT_ID).unread[BOSS] = 1
    async with store_maker.open() as store:
        async with running(exmail_sim, store, tenant=_watching(exmail_sim)) as run:
            await until(lambda: _polled_twice(run.listener.polls))
            exmail_sim.state.send_mail(CLIENT_ID, to=BOSS, sender="a@b.cn")

            async def stored() -> bool:
                return await store.get_baselines("acme") == {BOSS: 2}

            await until(stored)
        await claim_all(store)
        assert await _reconciled(exmail_sim, store) == []
