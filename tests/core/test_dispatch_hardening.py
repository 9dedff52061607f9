"""Issue 10 (delivery side): a dispatcher never dies, and ordered sinks keep order safely."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest.mock import patch

from bridge import metrics
from bridge.dispatch import MAX_RETRY_AFTER_S, next_try_delay_s
from bridge.errors import StoreError
from bridge.events import Event
from bridge.store.base import Store
from bridge.supervise import Supervisor
from tests.core.test_dispatch import SINK, Receiver, commit_mails, dispatching
from tests.core.test_listener import until
from tests.plugins.store import StoreMaker


def _sample(name: str, sink: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"sink": sink}) or 0.0


async def _got(receiver: Receiver, n: int) -> bool:
    return len(receiver.got) >= n


async def _dead(store: Store, n: int) -> bool:
    return await store.dead_count(SINK) == n


async def test_store_error_on_ordered_path_does_not_end_the_dispatcher(store: Store) -> None:
    """A store failure while an ordered sink acks is survived; later mails still arrive."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    real_ack = store.ack
    failures = [StoreError("injected", backend="test", op="ack")]

    async def flaky_ack(delivery: Any) -> None:
        if failures:
            raise failures.pop()
        await real_ack(delivery)

    with patch.object(store, "ack", flaky_ack):
        async with dispatching(store, receiver, retry_s=[0, 0.1], ordered=True, lease_s=0.5):
            await commit_mails(store, "bob@acme.com")
            await until(lambda: _got(receiver, 1))
            await commit_mails(store, "amy@acme.com")
            await until(lambda: _got(receiver, 3))  # amy's, and bob's again after the lease
            await until(lambda: _backlog_empty(store))


async def _backlog_empty(store: Store) -> bool:
    return await store.backlog(SINK) == 0


async def test_unexpected_sink_exception_is_a_failed_attempt(store: Store) -> None:
    """A ValueError from a sink climbs the ladder and ends as a dead letter with a reason."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    before = _sample("exmail_bridge_sink_internal_errors_total", SINK)
    async with dispatching(store, receiver, retry_s=[0, 0.05, 0.05]) as dispatcher:

        async def broken(_event: Event) -> None:
            raise ValueError("Invalid topic name")

        with patch.object(dispatcher.sink, "send", broken):
            await commit_mails(store, "bob@acme.com")
            await until(lambda: _dead(store, 1))
    [letter] = await store.dead_letters(SINK)
    assert (letter.attempts, letter.reason) == (3, "retries exhausted: internal error: ValueError")
    assert _sample("exmail_bridge_sink_internal_errors_total", SINK) - before == 3


async def test_a_dispatcher_that_keeps_dying_is_restarted_and_reported(store: Store) -> None:
    """A claim that crashes is retried by the supervisor; /readyz's check names the sink."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    real_claim = store.claim
    crashes = [RuntimeError("bug")] * 3

    async def buggy_claim(sink: str, **kw: Any) -> Any:
        if crashes:
            raise crashes.pop()
        return await real_claim(sink, **kw)

    supervisor = Supervisor("dispatcher hook", base_s=0.01, cap_s=0.05)
    with patch.object(store, "claim", buggy_claim):
        async with dispatching(store, receiver, retry_s=[0], supervisor=supervisor) as d:
            await until(lambda: _restarted(supervisor, 3))
            assert "keeps dying: 3 restarts" in (d.problem() or "")
            assert _sample("exmail_bridge_dispatcher_failing", SINK) == 1
            await commit_mails(store, "bob@acme.com")
            await until(lambda: _got(receiver, 1))


async def _restarted(supervisor: Supervisor, n: int) -> bool:
    return supervisor.restarts >= n


async def test_holding_behind_a_failure_uses_no_retry_rung(store: Store) -> None:
    """A mail held behind its mailbox's failing first mail still gets its whole ladder."""

    def plan(_mailbox: str, tries: int) -> tuple[int, dict[str, str]]:
        return (503, {}) if tries < 2 else (200, {})

    receiver = Receiver(plan=plan)
    async with dispatching(store, receiver, retry_s=[0, 0.1, 0.1, 0.1], ordered=True):
        ids = await commit_mails(store, "bob@acme.com", "bob@acme.com")
        await until(lambda: _got(receiver, 2))
    assert [i for i, _, _ in receiver.got] == ids
    assert await store.dead_count(SINK) == 0


async def test_order_holds_across_two_replicas(store_maker: StoreMaker) -> None:
    """Two dispatchers on two store handles deliver one mailbox's mails in commit order."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    async with (
        store_maker.open() as one,
        store_maker.open() as two,
        dispatching(one, receiver, retry_s=[0, 0.05], ordered=True),
        dispatching(two, receiver, retry_s=[0, 0.05], ordered=True),
    ):
        ids = await commit_mails(one, *["bob@acme.com"] * 12)
        await until(lambda: _got(receiver, 12))
    assert [i for i, _, _ in receiver.got] == ids


async def test_a_claim_in_work_is_renewed(store_maker: StoreMaker) -> None:
    """A send slower than the claim lease is not handed to another claimer meanwhile."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    gate = receiver.gates["bob@acme.com"] = asyncio.Event()
    async with (
        store_maker.open() as one,
        store_maker.open() as other,
        dispatching(one, receiver, retry_s=[0, 0.05], lease_s=0.3, timeout_s=5),
    ):
        await commit_mails(one, "bob@acme.com")
        await until(lambda: _waiting(receiver))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert await other.claim(SINK, limit=10, lease_s=30) == []
            await asyncio.sleep(0.1)
        gate.set()
        await until(lambda: _got(receiver, 1))
    assert receiver.tries == {receiver.got[0][0]: 1}


async def test_a_renewal_that_raises_does_not_end_the_renewals(store_maker: StoreMaker) -> None:
    """One renewal dying of a bug is logged; the claim is still renewed, never handed out."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    gate = receiver.gates["bob@acme.com"] = asyncio.Event()
    async with store_maker.open() as one, store_maker.open() as other:
        real_renew = one.renew
        calls = 0

        async def renew_failing_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug")
            return await real_renew(*args, **kwargs)

        with patch.object(one, "renew", renew_failing_once):
            async with dispatching(one, receiver, retry_s=[0, 0.05], lease_s=0.3, timeout_s=5):
                await commit_mails(one, "bob@acme.com")
                await until(lambda: _waiting(receiver))
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    assert await other.claim(SINK, limit=10, lease_s=30) == []
                    await asyncio.sleep(0.1)
                gate.set()
                await until(lambda: _got(receiver, 1))
    assert calls >= 3
    assert receiver.tries == {receiver.got[0][0]: 1}


async def _waiting(receiver: Receiver) -> bool:
    return receiver.waiting >= 1


async def test_first_rung_delays_the_first_try(store: Store) -> None:
    """retry_s[0] = 0.5 holds the first try half a second, without counting an attempt."""
    receiver = Receiver(plan=lambda _m, _a: (200, {}))
    async with dispatching(store, receiver, retry_s=[0.5, 0.05]):
        committed = time.monotonic()
        [event_id] = await commit_mails(store, "bob@acme.com")
        await until(lambda: _got(receiver, 1))
    assert receiver.got[0][2] - committed >= 0.45
    assert receiver.tries == {event_id: 1}


def test_retry_after_is_capped_at_an_hour() -> None:
    """A Retry-After of three days waits one hour, never longer."""
    delay = next_try_delay_s([0, 5, 300], 0, 3 * 86400.0, rand=lambda a, b: 1.0)
    assert delay == MAX_RETRY_AFTER_S
