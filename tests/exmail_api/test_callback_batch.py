"""Group commit of callbacks against both real stores: replays inside and across groups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any
from unittest.mock import patch

from bridge.errors import CallbackRefused
from bridge.exmail_api.callback_batch import GroupCommit
from bridge.exmail_api.callback_verify import Verified, Verifier
from bridge.routing import Router
from bridge.sources.commit import Committer
from bridge.store.base import Store
from tests.exmail_api.helpers import api_tenant, mail_xml, sealed

SINK = "oa"


def _verified(*mail_ids: str) -> list[Verified]:
    verifier = Verifier(tenant=api_tenant())
    return [
        verifier.message(cb.query, cb.body)
        for cb in (sealed(mail_xml(mail_id=m)) for m in mail_ids)
    ]


def _group(store: Store) -> GroupCommit:
    tenant = api_tenant()
    router = Router(routes=(), sinks=[SINK])
    committer = Committer(tenant=tenant.name, store=store, router=router, backoff_base_s=0.01)
    return GroupCommit(tenant=tenant, committer=committer)


async def _outcomes(group: GroupCommit, items: list[Verified]) -> list[str]:
    answers = await asyncio.gather(*(group.submit(v) for v in items), return_exceptions=True)
    return [a.reason if isinstance(a, CallbackRefused) else str(a) for a in answers]


async def test_a_stored_replay_in_a_group_leaves_the_rest_committed(store: Store) -> None:
    """A stored replay inside a group is refused; the rest of the group is committed."""
    group = _group(store)
    old, *fresh = _verified("m-old", "m-1", "m-2", "m-3")
    assert await group.submit(old) == "committed"
    outcomes = await _outcomes(group, [fresh[0], old, fresh[1], fresh[2]])
    assert outcomes == ["committed", "replay", "committed", "committed"]
    claimed = await store.claim(SINK, limit=10, lease_s=60)
    assert sorted(d.event.data["mail_id"] for d in claimed) == ["m-1", "m-2", "m-3", "m-old"]


async def test_copies_inside_one_group_commit_once(store: Store) -> None:
    """The same callback three times in one group: one committed, two replays, one event."""
    group = _group(store)
    (one,) = _verified("m-copy")
    assert await _outcomes(group, [one, one, one]) == ["committed", "replay", "replay"]
    assert await store.backlog(SINK) == 1


async def test_a_replayed_count_does_not_reach_the_baselines(store: Store) -> None:
    """A replayed callback's count never reaches the watched mailbox's baseline."""
    tenant = api_tenant(watch=["boss@globex.com"])
    router = Router(routes=(), sinks=[SINK])
    committer = Committer(tenant=tenant.name, store=store, router=router, backoff_base_s=0.01)
    group = GroupCommit(tenant=tenant, committer=committer)
    verifier = Verifier(tenant=tenant)
    old, new = (
        verifier.message(cb.query, cb.body)
        for cb in (
            sealed(mail_xml(mail_id="m-a", new_count=5)),
            sealed(mail_xml(mail_id="m-b", new_count=3)),
        )
    )
    assert await group.submit(old) == "committed"
    assert await _outcomes(group, [new, old]) == ["committed", "replay"]
    assert await store.get_baselines("globex") == {"boss@globex.com": 3}


async def test_callbacks_failed_by_a_crash_are_never_committed_later(store: Store) -> None:
    """A group commit crashing fails every waiting callback at once; none is committed later."""
    group = _group(store)
    first, queued, later = _verified("m-1", "m-2", "m-3")
    real = store.commit
    calls = 0

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)  # `queued` arrives meanwhile
            raise RuntimeError("a bug")
        return await real(*args, **kwargs)

    with patch.object(store, "commit", crashing):
        answers = await asyncio.gather(
            group.submit(first), _after(0.01, group.submit(queued)), return_exceptions=True
        )
        assert [type(a).__name__ for a in answers] == ["StoreError", "StoreError"]
        assert await group.submit(later) == "committed"
    claimed = await store.claim(SINK, limit=10, lease_s=60)
    assert [d.event.data["mail_id"] for d in claimed] == ["m-3"]


async def _after(delay_s: float, job: Awaitable[str]) -> str:
    await asyncio.sleep(delay_s)
    return await job
