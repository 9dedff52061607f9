"""The listener against the real Exmail simulator and both real stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from bridge import events
from bridge.config import ExmailSection, TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.listener import Listener
from bridge.routing import Router
from bridge.simulator.exmail import start_site
from bridge.states import StateBoard
from bridge.store.base import Delivery, Store
from tests.plugins.sim import ExmailSim, ExmailSimFactory
from tests.plugins.store import StoreMaker

CLIENT_ID = "admin@acme.com"
SINK = "s"


@dataclass
class Sleeps:
    """A test-mode sleep: records the delays asked for and never really waits."""

    asked: list[float] = field(default_factory=list)
    states: list[str | None] = field(default_factory=list)  # the tenant's state at each sleep
    board: StateBoard | None = None

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.states.append(self.board.get("acme") if self.board else None)
        await asyncio.sleep(0)


@dataclass
class Running:
    """A listener task over a simulator and a store."""

    listener: Listener
    store: Store
    sleeps: Sleeps
    board: StateBoard


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll `check` until it is true (fails the test after `timeout_s`)."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.01)


async def claim_all(store: Store) -> list[Delivery]:
    """Every due delivery of the test sink."""
    return await store.claim(SINK, limit=1000, lease_s=60)


@asynccontextmanager
async def running(
    sim: ExmailSim,
    store: Store,
    *,
    tenant: TenantConfig | None = None,
    settings: ExmailSection | None = None,
    unread_memory: int = 1000,
) -> AsyncIterator[Running]:
    """Run one listener until the block ends."""
    settings = settings or sim.exmail_settings()
    board = StateBoard()
    sleeps = Sleeps(board=board)
    async with make_session(settings, max_connections=8) as session:
        listener = Listener(
            tenant=tenant or sim.tenant_config(),
            upstream=ExmailClient(session=session, settings=settings),
            store=store,
            router=Router(routes=[], sinks=[SINK]),
            settings=settings,
            board=board,
            sleep=sleeps,
            unread_memory=unread_memory,
        )
        task = asyncio.create_task(listener.run(), name="listener[test]")
        try:
            yield Running(listener=listener, store=store, sleeps=sleeps, board=board)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await listener.drain()


async def test_mail_push_becomes_event(exmail_sim: ExmailSim, store: Store) -> None:
    """A new-mail push becomes one exmail.mail.received event in the sink's outbox."""
    async with running(exmail_sim, store):
        mail_id = exmail_sim.state.send_mail(
            CLIENT_ID, to="bob@acme.com", sender='"T"<t@x.cn>', subject="你好", summary="s"
        )
        found: list[Delivery] = []

        async def arrived() -> bool:
            found.extend(await claim_all(store))
            return any(d.event.type == events.MAIL_RECEIVED for d in found)

        await until(arrived)
    mail = next(d.event for d in found if d.event.type == events.MAIL_RECEIVED)
    assert mail.data["mail_id"] == mail_id
    assert mail.data["subject"] == "你好"
    assert mail.data["from"] == {"name": "T", "address": "t@x.cn"}
    assert mail.data["unread_count"] == 1
    assert mail.id == events.event_id("acme", "mail", mail_id)


async def test_unread_push_becomes_event(exmail_sim: ExmailSim, store: Store) -> None:
    """An unread-count push becomes exmail.mail.unread with the previous count."""
    async with running(exmail_sim, store):
        exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")
        exmail_sim.state.set_unread(CLIENT_ID, "bob@acme.com", 0)
        found: list[Delivery] = []

        async def arrived() -> bool:
            found.extend(await claim_all(store))
            return any(d.event.type == events.MAIL_UNREAD for d in found)

        await until(arrived)
    unread = next(d.event for d in found if d.event.type == events.MAIL_UNREAD)
    assert unread.data["unread_count"] == 0
    assert unread.data["previous"] == 1
    assert unread.data["reason"] == "push"


async def test_version_push_syncs_directory(exmail_sim: ExmailSim, store: Store) -> None:
    """A Ver push calls user/list with the old version; event and version commit together."""
    async with running(exmail_sim, store) as run:
        await until(lambda: _polled(run, 1))
        ver = exmail_sim.state.add_user(CLIENT_ID, "carol@acme.com")
        found: list[Delivery] = []

        async def synced() -> bool:
            found.extend(await claim_all(store))
            return any(d.event.type == events.DIRECTORY_CHANGED for d in found)

        await until(synced)
        assert await store.get_version("acme") == ver
    directory = [d.event for d in found if d.event.type == events.DIRECTORY_CHANGED][-1]
    assert "carol@acme.com" in directory.data["added"]
    assert directory.data["version"] == ver


async def _polled(run: Running, n: int) -> bool:
    return run.listener.polls >= n


async def test_mail_pushed_twice_is_emitted_once(exmail_sim: ExmailSim, store: Store) -> None:
    """A re-pushed mail (same MailId) is deduplicated by its stable event id."""
    async with running(exmail_sim, store) as run:
        mail_id = exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")
        exmail_sim.state.repush(CLIENT_ID, mail_id)
        await until(lambda: _queue_empty(exmail_sim))
        await until(lambda: _polled(run, 3))
    mails = [d for d in await claim_all(store) if d.event.type == events.MAIL_RECEIVED]
    assert len(mails) == 1


async def _queue_empty(sim: ExmailSim) -> bool:
    return int(sim.state.stats(CLIENT_ID)["queued"]) == 0


async def test_version_survives_restart(exmail_sim: ExmailSim, store_maker: StoreMaker) -> None:
    """After a restart the first listen sends the stored Ver, not 0."""
    async with store_maker.open() as store, running(exmail_sim, store):
        ver = exmail_sim.state.add_user(CLIENT_ID, "dave@acme.com")

        async def stored() -> bool:
            return await store.get_version("acme") == ver

        await until(stored)
    store_maker.restart()
    before = len(exmail_sim.state.stats(CLIENT_ID)["listen_vers"])
    async with store_maker.open() as store, running(exmail_sim, store):

        async def listened() -> bool:
            return len(exmail_sim.state.stats(CLIENT_ID)["listen_vers"]) > before

        await until(listened)
    assert str(exmail_sim.state.stats(CLIENT_ID)["listen_vers"][before]) == ver


async def test_backoff_grows_then_resets(exmail_sim: ExmailSim, store: Store) -> None:
    """5xx answers back off with growing (capped, jittered) delays; a good poll resets."""
    exmail_sim.state.set_faults(http_5xx=1.0, endpoints=frozenset({"listen"}), times=5)
    settings = exmail_sim.exmail_settings(backoff_base_s=1.0, backoff_cap_s=4.0)
    async with running(exmail_sim, store, settings=settings) as run:
        await until(lambda: _polled(run, 2))
        assert run.listener.backoff.failures == 0
    delays = run.sleeps.asked[1:6]  # the first sleep is the (zero) start-up delay
    assert len(delays) == 5
    assert all(0 <= d <= cap for d, cap in zip(delays, [1, 2, 4, 4, 4], strict=True))


MAIL = events.MAIL_RECEIVED


async def test_invalid_token_mid_stream(exmail_sim: ExmailSim, store: Store) -> None:
    """A revoked token (1200) costs exactly one new token request, then mail flows again."""
    async with running(exmail_sim, store) as run:
        await until(lambda: _polled(run, 1))
        tokens = exmail_sim.state.stats(CLIENT_ID)["token_requests"]
        exmail_sim.state.revoke_tokens(CLIENT_ID)
        seen: set[str] = set()

        async def arrived() -> bool:
            seen.update(d.event.id for d in await claim_all(store) if d.event.type == MAIL)
            return len(seen) == len(sent)

        # A listen already held when the token was revoked may still deliver the first mail;
        # the listen after it must present the revoked token, so by the second mail the
        # bridge has met 1200 and fetched exactly one new token.
        sent = [exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")]
        await until(arrived)
        sent.append(exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="c@d.cn"))
        await until(arrived)
        assert exmail_sim.state.stats(CLIENT_ID)["token_requests"] == tokens + 1


async def test_bad_credentials_park(exmail_sim_factory: ExmailSimFactory, store: Store) -> None:
    """Bad credentials park the tenant: each retry waits park_s, no hot loop."""
    sim = await exmail_sim_factory(credentials={CLIENT_ID: "right"})
    tenant = sim.tenant_config(secret="wrong")
    settings = sim.exmail_settings(park_s=900)
    async with running(sim, store, tenant=tenant, settings=settings) as run:
        await until(lambda: _slept(run, 3))
    assert run.sleeps.asked[1:3] == [900, 900]
    assert run.sleeps.states[1:3] == ["parked", "parked"]


async def _slept(run: Running, n: int) -> bool:
    return len(run.sleeps.asked) >= n


async def test_simulator_restart_reconnects(exmail_sim: ExmailSim, store: Store) -> None:
    """When the upstream goes away and comes back, the listener reconnects by itself."""
    async with running(exmail_sim, store) as run:
        await until(lambda: _polled(run, 1))
        port = exmail_sim.port
        await exmail_sim.runner.cleanup()
        failures_seen = len(run.sleeps.asked)
        await until(lambda: _slept(run, failures_seen + 2))
        exmail_sim.state.closing.clear()
        exmail_sim.runner = await start_site(exmail_sim.app, host="127.0.0.1", port=port)
        exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")

        async def arrived() -> bool:
            return any(d.event.type == events.MAIL_RECEIVED for d in await claim_all(store))

        await until(arrived)


@pytest.mark.parametrize("rise", [True, False])
async def test_reconcile_after_gap(exmail_sim: ExmailSim, store: Store, rise: bool) -> None:
    """After a gap, a watched mailbox whose unread count rose emits exmail.mail.unread."""
    tenant = TenantConfig.model_validate(
        {
            **exmail_sim.tenant_config().model_dump(),
            "watch": ["boss@acme.com"],
            "client_secret": "x",
        }
    )
    exmail_sim.state.add_user(CLIENT_ID, "boss@acme.com")
    exmail_sim.state.set_unread(CLIENT_ID, "boss@acme.com", 3)
    async with running(exmail_sim, store, tenant=tenant) as run:
        await until(lambda: _polled(run, 2))
        await claim_all(store)  # what happened before the gap
        # The count changes without a push reaching the bridge, then it loses the upstream
        # for a while: only the reconcile after that gap can notice.
        exmail_sim.state.tenant(CLIENT_ID).unread["boss@acme.com"] = 7 if rise else 3
        exmail_sim.state.set_faults(http_5xx=1.0, endpoints=frozenset({"listen"}), times=2)
        await until(lambda: _slept(run, 3))
        await until(lambda: _polled(run, 4))
        found = [d.event for d in await claim_all(store) if d.event.type == events.MAIL_UNREAD]
    reconciled = [e for e in found if e.data["reason"] == "reconcile"]
    if rise:
        assert [(e.data["previous"], e.data["unread_count"]) for e in reconciled] == [(3, 7)]
    else:
        assert reconciled == []
