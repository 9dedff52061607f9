"""The dispatcher with a real webhook sink, a real local receiver and both real stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bridge import events
from bridge.config import WebhookSinkConfig
from bridge.dispatch import Dispatcher
from bridge.simulator.exmail import site_port, start_site
from bridge.store.base import Routed, Store
from sinks.webhook import WebhookSink
from tests.core.test_listener import until

SINK = "hook"


@dataclass
class Receiver:
    """A local webhook receiver; `plan(mailbox, attempt)` decides each answer."""

    plan: Callable[[str, int], tuple[int, dict[str, str]]]
    got: list[tuple[str, str, float]] = field(default_factory=list)  # (id, mailbox, time)
    tries: dict[str, int] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # mailbox -> answer when set
    waiting: int = 0  # requests that reached a gate

    async def handle(self, request: web.Request) -> web.Response:
        """Record the delivery and answer as planned."""
        doc = orjson.loads(await request.read())
        gate = self.gates.get(doc["subject"])
        if gate is not None:
            self.waiting += 1
            await gate.wait()
        attempt = self.tries.get(doc["id"], 0)
        self.tries[doc["id"]] = attempt + 1
        status, headers = self.plan(doc["subject"], attempt)
        if status < 300:
            self.got.append((doc["id"], doc["subject"], time.monotonic()))
        return web.Response(status=status, headers=headers)


@asynccontextmanager
async def dispatching(
    store: Store,
    receiver: Receiver,
    *,
    retry_s: list[float],
    ordered: bool = False,
    timeout_s: float = 2,
    **extra: Any,
) -> AsyncIterator[Dispatcher]:
    """A receiver on a free port and a running dispatcher delivering to it."""
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = await start_site(app, host="127.0.0.1", port=0)
    config = WebhookSinkConfig.model_validate(
        {
            "name": SINK,
            "type": "webhook",
            "url": f"http://127.0.0.1:{site_port(runner)}/hook",
            "secret": "whsec_dGVzdC1zZWNyZXQ=",
            "retry_s": retry_s,
            "ordered": ordered,
            "timeout_s": timeout_s,
        }
    )
    sink = WebhookSink(config=config)
    await sink.start()
    dispatcher = Dispatcher(
        sink=sink,
        store=store,
        retry_s=retry_s,
        concurrency=8,
        timeout_s=timeout_s,
        ordered=ordered,
        **extra,
    )
    task = asyncio.create_task(dispatcher.run(), name="dispatch[test]")
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 10)
        await sink.aclose()
        await runner.cleanup()


async def commit_mails(store: Store, *mailboxes: str) -> list[str]:
    """Commit one mail event per mailbox (in order); their ids."""
    ids = []
    for i, mailbox in enumerate(mailboxes):
        event = events.mail_received(
            tenant="acme",
            mailbox=mailbox,
            mail_id=f"M{i}-{time.monotonic_ns()}",
            sender="a@b.cn",
            to=mailbox,
            subject=f"s{i}",
            summary="",
            unread_count=i,
        )
        await store.commit("acme", [Routed(event=event, sinks=(SINK,))])
        ids.append(event.id)
    return ids


def always(status: int, headers: dict[str, str] | None = None) -> Receiver:
    """A receiver that always answers `status`."""
    return Receiver(plan=lambda _mailbox, _attempt: (status, headers or {}))


async def test_delivers_and_acks(store: Store) -> None:
    """Committed events reach the receiver once and leave the backlog."""
    receiver = always(204)
    async with dispatching(store, receiver, retry_s=[0, 0.1]) as dispatcher:
        ids = await commit_mails(store, "a@acme.com", "b@acme.com", "c@acme.com")
        await until(lambda: _count(receiver, 3))
        await until(lambda: _backlog(store, 0))
    assert sorted(i for i, _, _ in receiver.got) == sorted(ids)
    assert dispatcher.delivered == 3


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.got) >= n


async def _backlog(store: Store, n: int) -> bool:
    return await store.backlog(SINK) == n


async def test_ladder_exhausted_dead_letters(store: Store) -> None:
    """After the last rung a failing delivery is a dead letter, tried len(retry_s) times."""
    receiver = always(503)
    async with dispatching(store, receiver, retry_s=[0, 0.05, 0.05]):
        [event_id] = await commit_mails(store, "a@acme.com")
        await until(lambda: _dead(store, 1))
    [letter] = await store.dead_letters(SINK)
    assert letter.event.id == event_id
    assert letter.reason.startswith("retries exhausted")
    assert receiver.tries[event_id] == 3


async def _dead(store: Store, n: int) -> bool:
    return await store.dead_count(SINK) == n


async def test_permanent_error_dead_letters_at_once(store: Store) -> None:
    """A 400 is permanent: one try, then a dead letter; replay delivers it."""
    status = {"code": 400}
    receiver = Receiver(plan=lambda _m, _a: (status["code"], {}))
    async with dispatching(store, receiver, retry_s=[0, 0.05, 0.05]):
        [event_id] = await commit_mails(store, "a@acme.com")
        await until(lambda: _dead(store, 1))
        assert receiver.tries[event_id] == 1
        status["code"] = 200
        assert await store.replay(SINK) == 1
        await until(lambda: _count(receiver, 1))
    assert await store.dead_count(SINK) == 0


async def test_retry_after_is_a_floor(store: Store) -> None:
    """A 429 with Retry-After: 1 is retried no sooner than a second later."""
    seen: list[float] = []

    def plan(_mailbox: str, attempt: int) -> tuple[int, dict[str, str]]:
        seen.append(time.monotonic())
        return (429, {"Retry-After": "1"}) if attempt == 0 else (200, {})

    receiver = Receiver(plan=plan)
    async with dispatching(store, receiver, retry_s=[0, 0.01, 0.01]):
        await commit_mails(store, "a@acme.com")
        await until(lambda: _count(receiver, 1))
    assert seen[1] - seen[0] >= 0.9


async def test_loud_failure_marks_sink_until_success(store: Store) -> None:
    """A 410 marks the sink as failing permanently; a later success clears it."""
    status = {"code": 410}
    receiver = Receiver(plan=lambda _m, _a: (status["code"], {}))
    async with dispatching(store, receiver, retry_s=[0]) as dispatcher:
        await commit_mails(store, "a@acme.com")
        await until(lambda: _dead(store, 1))
        assert dispatcher.permanent_failure is not None
        status["code"] = 200
        await commit_mails(store, "b@acme.com")
        await until(lambda: _count(receiver, 1))

        # the flag clears once the success is acked, a moment after the receiver answered
        async def cleared() -> bool:
            return dispatcher.permanent_failure is None

        await until(cleared)


async def test_ordered_sink_keeps_mailbox_order(store: Store) -> None:
    """With ordered = true, later mails of a mailbox wait behind one that is retried."""

    def plan(mailbox: str, attempt: int) -> tuple[int, dict[str, str]]:
        first_of_bob = mailbox == "bob@acme.com" and attempt == 0 and not bob_failed
        if first_of_bob:
            bob_failed.append(True)
            return 503, {}
        return 200, {}

    bob_failed: list[bool] = []
    receiver = Receiver(plan=plan)
    async with dispatching(store, receiver, retry_s=[0, 0.3, 0.3], ordered=True):
        ids = await commit_mails(store, "bob@acme.com", "bob@acme.com", "amy@acme.com")
        await until(lambda: _count(receiver, 3))
    bob = [i for i, mailbox, _ in receiver.got if mailbox == "bob@acme.com"]
    assert bob == ids[:2]


async def test_slow_delivery_does_not_hold_back_others(store: Store) -> None:
    """While one send hangs, later deliveries take the free slots and arrive."""
    receiver = always(204)
    gate = receiver.gates["slow@acme.com"] = asyncio.Event()
    async with dispatching(store, receiver, retry_s=[0, 0.1], timeout_s=60):
        await commit_mails(store, "slow@acme.com")
        await until(lambda: _held(receiver))
        await commit_mails(store, "a@acme.com", "b@acme.com", "c@acme.com")
        await until(lambda: _count(receiver, 3))
        assert all(mailbox != "slow@acme.com" for _, mailbox, _ in receiver.got)
        gate.set()
        await until(lambda: _count(receiver, 4))


async def _held(receiver: Receiver) -> bool:
    return receiver.waiting >= 1
