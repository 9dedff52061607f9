"""A held listen that breaks reconnects at once (paced only by the rate budget)."""

from __future__ import annotations

import asyncio
import gc

import aiohttp

from bridge.errors import UpstreamError
from bridge.store.base import Store
from tests.core.test_listener import CLIENT_ID, Running, claim_all, running, until
from tests.plugins.sim import ExmailSim


async def test_broken_held_listen_reconnects_without_backoff(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """The first failure after a held listen waits 0 s; the mail cut off is not lost."""
    exmail_sim.state.configure(hold_s=30.0)
    async with running(exmail_sim, store) as run:
        await until(lambda: _connected(run.board.get("acme")))
        # Armed now, the reset hits the next listen: the one that follows mail "one".
        exmail_sim.state.set_faults(reset=True, endpoints=frozenset({"listen"}), times=1)
        exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn", subject="one")
        await until(lambda: _listens(exmail_sim, 2))  # listen #2 is held, fault armed
        exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn", subject="two")
        got: list[str] = []

        async def both() -> bool:
            got.extend(str(d.event.data["subject"]) for d in await claim_all(store))
            return sorted(got) == ["one", "two"]

        await until(both)
    assert _backoffs(run)[:1] == [0.0]


async def _connected(state: str | None) -> bool:
    return state == "connected"


async def _listens(sim: ExmailSim, n: int) -> bool:
    return (
        sim.state.listen_requests[CLIENT_ID] >= n
        and sim.state.tenant(CLIENT_ID).listens_connected > 0
    )


async def test_second_break_after_a_healthy_hold_also_reconnects_at_once(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """A listen held for min_poll_interval_s that breaks is a first failure again: 0 s."""
    exmail_sim.state.configure(hold_s=30.0)
    settings = exmail_sim.exmail_settings(min_poll_interval_s=0.1)
    async with running(exmail_sim, store, settings=settings) as run:
        for held in (1, 2):  # two storms within one hold of the first reconnect
            await until(lambda: _listens(exmail_sim, held))  # noqa: B023
            await asyncio.sleep(0.2)  # held longer than the interval: a healthy hold
            _cut_every_connection(exmail_sim)
        await until(lambda: _listens(exmail_sim, 3))
    assert _backoffs(run)[:2] == [0.0, 0.0]


async def test_break_right_after_a_break_backs_off(exmail_sim: ExmailSim, store: Store) -> None:
    """A listen that breaks again soon after a reconnect backs off: never a hot loop."""
    exmail_sim.state.configure(hold_s=30.0)
    settings = exmail_sim.exmail_settings(min_poll_interval_s=60.0)
    async with running(exmail_sim, store, settings=settings) as run:
        for held in (1, 2):
            await until(lambda: _listens(exmail_sim, held))  # noqa: B023
            _cut_every_connection(exmail_sim)
        await until(lambda: _backoffs_seen(run, 2))
    first, second = _backoffs(run)[:2]
    assert first == 0.0
    assert second > 0.0


def _cut_every_connection(sim: ExmailSim) -> None:
    """What a restarting load balancer does: every open connection is cut at once."""
    server = sim.runner.server
    assert server is not None
    for handler in server.connections:
        if handler.transport is not None:
            handler.transport.abort()


def _backoffs(run: Running) -> list[float]:
    return [
        s
        for s, state in zip(run.sleeps.asked, run.sleeps.states, strict=True)
        if state == "backoff"
    ]


async def _backoffs_seen(run: Running, n: int) -> bool:
    return len(_backoffs(run)) >= n


async def test_broken_listen_leaves_no_reference_cycle(exmail_sim: ExmailSim, store: Store) -> None:
    """A cut listen's response and errors are freed at once, not left to the full GC."""
    exmail_sim.state.configure(hold_s=30.0)
    async with running(exmail_sim, store) as run:
        await until(lambda: _listens(exmail_sim, 1))
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            _cut_every_connection(exmail_sim)
            await until(lambda: _listens(exmail_sim, 2))
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, aiohttp.ClientResponse | UpstreamError)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert _backoffs(run)[:1] == [0.0]
    assert left == []
