"""Group commit for one tenant's callbacks: many verified callbacks, one store round.

Callbacks that arrive while a group is being committed wait and go together in the next
group: one commit for all of them, in which the store both refuses replays and remembers
the new (signature, nonce) keys, instead of a lookup, a commit and a mark each. An idle
tenant's first callback goes at once (no timer), so grouping adds no latency when there is
no queue. Every callback still gets its answer only after its own event is durably
committed.

Replays: a key seen earlier in the same group is refused at once (`replay`); a key the store
remembers already makes the commit write nothing and name it, and the group is committed
again without it. Keys are remembered in the same transaction as the events, so a failed
commit leaves no mark and Tencent's retry is accepted, and a committed callback's copy is
always refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from bridge import baselines
from bridge.config import TenantConfig
from bridge.errors import CallbackRefused, StoreError
from bridge.events import Event
from bridge.exmail_api.callback_events import event_of
from bridge.exmail_api.callback_verify import Verified
from bridge.exmail_api.callback_xml import ApiMail, ApiUnknown
from bridge.logs import get_logger
from bridge.sources.commit import Committer

__all__ = ["MAX_GROUP", "REPLAY_TTL_S", "GroupCommit"]

log = get_logger(__name__)
MAX_GROUP = 256
REPLAY_TTL_S = 600.0


@dataclass
class _Waiting:
    verified: Verified
    answer: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: str | BaseException) -> None:
        if self.answer.done():
            return
        if isinstance(outcome, BaseException):
            self.answer.set_exception(outcome)
        else:
            self.answer.set_result(outcome)


class GroupCommit:
    """Commits one tenant's verified callbacks, grouped while a commit is in flight."""

    def __init__(self, *, tenant: TenantConfig, committer: Committer) -> None:
        self.tenant = tenant
        self._committer = committer
        self._queue: list[_Waiting] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, verified: Verified) -> str:
        """Commit the callback's event; its outcome (`committed`, `ignored`,
        `unknown_type`), or CallbackRefused("replay"), or StoreError."""
        waiting = _Waiting(verified)
        self._queue.append(waiting)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name=f"callbacks[{self.tenant.name}]")
        # shielded: a caller that stops waiting (timeout) does not cancel the group
        return await asyncio.shield(waiting.answer)

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                await self._commit_group(group)
            except StoreError as exc:
                for waiting in group:
                    waiting.settle(exc)
            except BaseException as exc:
                # Everyone waiting is answered 503 now, so nobody may commit them later.
                rest, self._queue = self._queue, []
                failure = StoreError(f"interrupted: {type(exc).__name__}", backend="", op="commit")
                for waiting in [*group, *rest]:
                    waiting.settle(failure)
                raise

    async def _commit_group(self, group: list[_Waiting]) -> None:
        fresh = self._refuse_repeats(group)
        while fresh:
            events = [e for e in (self._event_of(w) for w in fresh) if e is not None]
            result = await self._committer.commit_once(
                events,
                baselines=self._counts(fresh),
                nonces=[w.verified.replay_key for w in fresh],
                nonce_ttl_s=REPLAY_TTL_S,
            )
            if not result.replayed:
                break
            for waiting in fresh:
                if waiting.verified.replay_key in result.replayed:
                    waiting.settle(CallbackRefused("replay"))
            fresh = [w for w in fresh if w.verified.replay_key not in result.replayed]
        for waiting in fresh:
            waiting.settle(_outcome(self.tenant, waiting.verified))

    def _counts(self, fresh: list[_Waiting]) -> dict[str, int]:
        """Watched mailboxes' counts move their baselines in the same commit, so the
        reconcile after the next start does not announce these mails a second time; the
        last callback of a mailbox in the group wins."""
        counts: dict[str, int] = {}
        for waiting in fresh:
            push = waiting.verified.push
            if isinstance(push, ApiUnknown) or not _wanted(self.tenant, push.mailbox):
                continue
            count = push.new_count if isinstance(push, ApiMail) else push.unread_count
            counts.update(baselines.watched_count(self.tenant.watch, push.mailbox, count))
        return counts

    @staticmethod
    def _refuse_repeats(group: list[_Waiting]) -> list[_Waiting]:
        """The group without copies of a key earlier in it (refused as replays)."""
        seen: set[str] = set()
        fresh: list[_Waiting] = []
        for waiting in group:
            key = waiting.verified.replay_key
            if key in seen:
                waiting.settle(CallbackRefused("replay"))
            else:
                seen.add(key)
                fresh.append(waiting)
        return fresh

    def _event_of(self, waiting: _Waiting) -> Event | None:
        push = waiting.verified.push
        if isinstance(push, ApiUnknown) or not _wanted(self.tenant, push.mailbox):
            return None
        return event_of(self.tenant, push)


def _wanted(tenant: TenantConfig, mailbox: str) -> bool:
    return any(fnmatchcase(mailbox.lower(), p.lower()) for p in tenant.mailboxes)


def _outcome(tenant: TenantConfig, verified: Verified) -> str:
    push = verified.push
    if isinstance(push, ApiUnknown):
        log.warning(
            "callback_unknown_type",
            tenant=tenant.name,
            msg_type=push.msg_type[:40],
            keys=list(push.keys)[:20],
        )
        return "unknown_type"
    return "committed" if _wanted(tenant, push.mailbox) else "ignored"
