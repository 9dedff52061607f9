"""A held listen that breaks reconnects at once (paced only by the rate budget)."""

from __future__ import annotations

from bridge.store.base import Store
from tests.core.test_listener import CLIENT_ID, claim_all, running, until
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
    backoffs = [
        s
        for s, state in zip(run.sleeps.asked, run.sleeps.states, strict=True)
        if state == "backoff"
    ]
    assert backoffs[:1] == [0.0]


async def _connected(state: str | None) -> bool:
    return state == "connected"


async def _listens(sim: ExmailSim, n: int) -> bool:
    return (
        sim.state.listen_requests[CLIENT_ID] >= n
        and sim.state.tenant(CLIENT_ID).listens_connected > 0
    )
