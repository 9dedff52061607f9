"""The `wecom-mail` poller (qyapi get_newcount by WeCom userid) and the poll schedule."""

from __future__ import annotations

import asyncio

import pytest

from bridge import events
from bridge.backoffs import Backoff
from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.exmail.session import make_session
from bridge.exmail_api.client import ApiClient
from bridge.exmail_api.newcount import ApiNewcount
from bridge.exmail_api.watch import PlainWatch
from bridge.routing import Router
from bridge.sources.commit import Committer
from bridge.sources.poller import Poller, phase
from bridge.sources.recovery import Recovery
from bridge.states import StateBoard
from bridge.store.base import Store
from tests.plugins.sim import ExmailSim
from tests.polling.harness import (
    CORP,
    SINK,
    Polling,
    config_for,
    drain_events,
    polling,
    rounds_done,
    sim_post,
    until,
)

CAROL = "carol@globex.com"


async def _rounds(run: Polling, n: int) -> None:
    async def done() -> bool:
        return await rounds_done(run, n)

    await until(done)


async def test_a_members_rise_is_announced_by_userid(exmail_sim: ExmailSim, store: Store) -> None:
    """The mailbox is mapped to its WeCom userid once; its rise becomes exmail.mail.unread."""
    await sim_post(exmail_sim, "api/corps", {"corp_id": CORP})
    await sim_post(exmail_sim, "api/users", {"tenant": CORP, "userid": CAROL, "wecom_userid": "CW"})
    config = config_for(exmail_sim, protocol="wecom-mail", watch=[CAROL, "ghost@globex.com"])
    async with polling(config, store) as run:
        await _rounds(run, 1)
        await sim_post(exmail_sim, "mail", {"tenant": CORP, "to": CAROL, "from": "a@b.cn"})
        await _rounds(run, 3)
        [rise] = await drain_events(store, events.MAIL_UNREAD)
    assert (rise.mailbox, rise.data["previous"], rise.data["unread_count"]) == (CAROL, 0, 1)
    assert await store.get_baselines("globex") == {CAROL: 1}  # the ghost was skipped


def test_wecom_mail_refuses_watch_patterns(exmail_sim: ExmailSim) -> None:
    """wecom-mail has no directory: a pattern in `watch` is a config error naming it."""
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.watch\[1\]"):
        config_for(exmail_sim, protocol="wecom-mail", watch=[CAROL, "*@globex.com"])


def test_wecom_mail_refuses_callback_keys() -> None:
    """wecom-mail has no callbacks: a callback key is a config error naming it."""
    tenant = {
        "name": "x",
        "protocol": "wecom-mail",
        "corp_id": "ww1",
        "corp_secret": "s",
        "callback_token": "t",
    }
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.callback_token"):
        parse_config({"tenants": [tenant]}, env={})


async def test_polls_are_spread_evenly_over_the_interval(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """After the reconcile round, N mailboxes are polled interval/N apart, phase-shifted."""
    boxes = [f"u{i}@globex.com" for i in range(4)]
    await sim_post(exmail_sim, "api/corps", {"corp_id": CORP})
    for box in boxes:
        await sim_post(exmail_sim, "api/users", {"tenant": CORP, "userid": box})
    clock = Clock()
    config = config_for(exmail_sim, watch=boxes, exmail={"poll_interval_s": 40.0})
    async with make_session(config.exmail, max_connections=4) as session:
        client = ApiClient(session=session, settings=config.exmail, base_url=exmail_sim.url)
        tenant = config.tenants[0]
        reader = Recording(ApiNewcount(client=client, tenant=tenant), clock)
        poller = Poller(
            tenant="globex",
            protocol="api",
            reader=reader,
            watchlist=PlainWatch(boxes),
            store=store,
            committer=Committer(
                tenant="globex",
                store=store,
                router=Router(routes=[], sinks=[SINK]),
                backoff_base_s=1,
            ),
            board=StateBoard(),
            recovery=Recovery(
                tenant="globex",
                board=StateBoard(),
                backoff=Backoff(base_s=1, cap_s=2),
                park_s=900,
                sleep=clock,
            ),
            interval_s=40.0,
            sleep=clock,
            clock=clock.now,
        )
        task = asyncio.create_task(poller.run())
        await until(lambda: _after(poller, 2))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    step = 40.0 / 4
    first = phase("globex") * step
    # round 1 (reconcile) polls at once and waits out the interval; round 2 is spread
    assert clock.polls_at[:4] == pytest.approx([0.0] * 4, abs=1e-6)
    assert clock.polls_at[4:8] == pytest.approx([40.0 + first + i * step for i in range(4)])


async def _after(poller: Poller, rounds: int) -> bool:
    return poller.rounds >= rounds


class Clock:
    """A fake clock that moves only when the poller sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.polls_at: list[float] = []

    def now(self) -> float:
        return self.t

    async def __call__(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


class Recording:
    """The real reader, noting the fake time at which each poll began."""

    def __init__(self, reader: ApiNewcount, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def unread_count(self, mailbox: str) -> int:
        self._clock.polls_at.append(self._clock.t)
        return await self._reader.unread_count(mailbox)
