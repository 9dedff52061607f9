"""The collector policy: survivors frozen, cycles still freed (young, or by an audit)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from bridge import metrics
from bridge.gcpolicy import GEN0_THRESHOLD, GcPolicy, tuned
from tests.exmail.helpers import until


class Node:
    """One half of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Two nodes pointing at each other, nothing else pointing at them: cyclic garbage."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def frozen_cycle() -> weakref.ref[Node]:
    """A cycle frozen by a young collection while alive, then dropped: frozen garbage."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(0)  # frozen while alive
    return weakref.ref(a)  # the nodes die with this frame


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def manual_gc() -> Iterator[None]:
    """Only the collections a test asks for run (no automatic one in between)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def policy(manual_gc: None) -> Iterator[GcPolicy]:
    """An installed policy, uninstalled afterwards."""
    installed = GcPolicy(audit_every_s=60.0, clock=Clock())
    installed.install()
    try:
        yield installed
    finally:
        installed.uninstall()


def test_survivors_of_a_collection_are_frozen(policy: GcPolicy) -> None:
    """An object that lives through a young collection is not scanned by the next ones."""
    live = Node()
    frozen_before = gc.get_freeze_count()
    gc.collect(0)
    assert gc.get_freeze_count() > frozen_before
    assert not any(o is live for o in gc.get_objects())


def test_a_cycle_that_dies_young_is_collected(policy: GcPolicy) -> None:
    """A cycle dropped before any collection saw it is freed by the next young one."""
    ref = cycle()
    gc.collect(0)
    assert ref() is None


def test_a_frozen_cycle_is_freed_by_the_audit(policy: GcPolicy) -> None:
    """A cycle frozen while alive and dropped later survives young collections, not an audit."""
    ref = frozen_cycle()
    gc.collect(0)
    assert ref() is not None
    assert policy.audit() >= 2
    assert ref() is None


def test_young_scans_back_off_while_they_find_nothing(policy: GcPolicy) -> None:
    """After an empty scan the next young batch goes unscanned; finding garbage ends that."""
    gc.collect(0)  # finds nothing: the next batch is frozen unscanned
    skipped = cycle()
    gc.collect(0)
    assert skipped() is not None
    found = cycle()
    gc.collect(0)  # scanned again, and finds the cycle
    assert found() is None
    after = cycle()
    gc.collect(0)
    assert after() is None
    policy.audit()
    assert skipped() is None


def test_full_collections_always_scan(policy: GcPolicy) -> None:
    """While young batches go unscanned, a full collection still frees a fresh cycle."""
    gc.collect(0)
    ref = cycle()
    gc.collect(2)
    assert ref() is None


async def test_the_audit_loop_frees_a_cycle_created_after_start(manual_gc: None) -> None:
    """Running by itself, the policy frees a cycle that was frozen and then dropped."""
    async with tuned(GcPolicy(audit_every_s=0.0, tick_s=0.0)):
        ref = frozen_cycle()
        await until(lambda: ref() is None)


def test_an_audit_is_due_after_the_interval_once_anything_was_frozen(
    manual_gc: None,
) -> None:
    """No audit before `audit_every_s`, nor after it while nothing new was frozen."""
    clock = Clock()
    policy = GcPolicy(audit_every_s=60.0, clock=clock)
    policy.install()
    try:
        clock.now_s = 120.0
        assert not policy.due()  # nothing frozen since the start
        gc.collect(0)
        clock.now_s = 150.0
        assert policy.due()
        policy.audit()
        gc.collect(0)
        assert not policy.due()  # frozen since, but the interval has not passed again
        clock.now_s = 210.0
        assert policy.due()
    finally:
        policy.uninstall()


def test_an_audit_is_due_when_the_frozen_objects_double(policy: GcPolicy) -> None:
    """Twice the frozen objects of the last audit make one due before the interval."""
    assert not policy.due()  # the first count is the baseline
    grown: list[list[int]] = [[] for _ in range(gc.get_freeze_count() + 1)]
    gc.collect(0)
    assert policy.due()
    assert len(grown) > 0


def test_the_meter_counts_collections_and_garbage_per_generation(policy: GcPolicy) -> None:
    """A gen-1 collection that frees a cycle is one gen-1 collection with 2 objects found."""
    before = policy.figures()
    cycle()
    gc.collect(1)
    after = policy.figures()
    assert after.collections[1] == before.collections[1] + 1
    assert after.collected[1] - before.collected[1] >= 2
    assert after.cpu_s[1] >= before.cpu_s[1]


def test_metrics_export_the_meter(policy: GcPolicy) -> None:
    """/metrics shows the meter's collections per generation."""
    metrics.watch_gc(policy.figures)
    try:
        gc.collect(2)
        text = generate_latest(metrics.REGISTRY).decode()
    finally:
        metrics.watch_gc(None)
    count = policy.figures().collections[2]
    assert f'exmail_bridge_gc_collections_total{{generation="2"}} {float(count)}' in text


def test_install_and_uninstall_restore_cpythons_policy(manual_gc: None) -> None:
    """Installed: gen-0 threshold raised, callbacks in; uninstalled: as before, nothing frozen."""
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    policy = GcPolicy()
    policy.install()
    assert gc.get_threshold()[0] == max(threshold[0], GEN0_THRESHOLD)
    assert len(gc.callbacks) == len(callbacks) + 2
    policy.uninstall()
    assert gc.get_threshold() == threshold
    assert gc.callbacks == callbacks
    assert gc.get_freeze_count() == 0


class FailingOnce(GcPolicy):
    """A policy whose first audit fails (a log handler that raised, say)."""

    def __init__(self) -> None:
        super().__init__(audit_every_s=0.0, tick_s=0.0)
        self.failed = False

    def audit(self) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("audit failed")
        return super().audit()


async def test_a_failed_audit_does_not_end_the_audits(manual_gc: None) -> None:
    """An audit that raises is logged and the next one still frees frozen cycles."""
    policy = FailingOnce()
    async with tuned(policy):
        gc.collect(0)  # something frozen: an audit is due
        await until(lambda: policy.failed)
        ref = frozen_cycle()
        await until(lambda: ref() is None)
    assert gc.get_freeze_count() == 0  # uninstalled at the end
