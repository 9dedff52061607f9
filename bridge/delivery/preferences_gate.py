"""The WeCom sink's gate: each member's preferences decide deliver, hold or mute.

`screen` runs before a member's cards are built: mails to deliver now pass through;
held mails are written to the store (the outbox delivery is acknowledged only after that
write, so nothing is lost) and muted mails are skipped; either way a notice records it
for the member's page. `delivered` records what reached the member. Preferences are read
from the store on every batch, so a change on any replica applies to the next mail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from bridge.delivery.held_digest import DIGEST, digest_mails
from bridge.delivery.preferences import Notice, NoticeState, member_key
from bridge.delivery.preferences_rules import MailFacts, verdict
from bridge.errors import StoreError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.store.base import Store

__all__ = ["PreferenceGate", "notice_for"]

log = get_logger(__name__)


def _facts(event: Event) -> MailFacts:
    sender = event.data.get("from") or {}
    address = (
        str(sender.get("address") or sender.get("raw") or "") if isinstance(sender, dict) else ""
    )
    return MailFacts(sender=address, subject=str(event.data.get("subject") or ""))


def _arrived_at(event: Event, fallback: float) -> float:
    try:
        return datetime.fromisoformat(event.time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback


def notice_for(event: Event, state: NoticeState, now: float) -> Notice:
    """The page's line for a mail event."""
    sender = event.data.get("from") or {}
    shown = ""
    if isinstance(sender, dict):
        name, address = str(sender.get("name") or ""), str(sender.get("address") or "")
        shown = f"{name} <{address}>" if name and address else name or address
        shown = shown or str(sender.get("raw") or "")
    return Notice(
        event_id=event.id,
        mailbox=event.mailbox,
        sender=shown or "?",
        subject=str(event.data.get("subject") or ""),
        at=_arrived_at(event, now),
        state=state,
    )


class PreferenceGate:
    """Applies members' preferences for one WeCom sink (one corp)."""

    def __init__(
        self, *, store: Store, sink: str, corp_id: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._sink = sink
        self._corp_id = corp_id
        self._clock = clock

    def member(self, userid: str) -> str:
        """The store's key of a member of this sink's corp."""
        return member_key(self._corp_id, userid)

    async def screen(self, userid: str, events: Sequence[Event]) -> list[Event]:
        """The events to deliver now; the rest are held or muted (and recorded).
        StoreError propagates: the caller retries those events later."""
        member = self.member(userid)
        prefs = await self._store.get_preferences(member)
        if prefs is None:
            return list(events)
        now, keep = self._clock(), []
        for position, event in enumerate(events):
            if event.type == DIGEST:
                keep.append(event)  # a released hold: deliver whatever the time
                continue
            decision = verdict(prefs, _facts(event), now)
            if decision.action == "deliver":
                keep.append(event)
                continue
            if decision.action == "hold":
                # A microsecond per position keeps the batch's commit order among mails held
                # in the same instant (held mails are read back ordered by held_at).
                await self._store.hold(self._sink, member, event, now + position * 1e-6)
            await self._store.record_notice(member, notice_for(event, _state(decision.action), now))
            log.info("wecom_" + decision.action, sink=self._sink, userid=userid, why=decision.why)
        return keep

    async def delivered(self, userid: str, events: Sequence[Event]) -> None:
        """Record that these events (digests: their mails) reached the member."""
        member, now = self.member(userid), self._clock()
        try:
            for event in events:
                for mail in digest_mails(event):
                    await self._store.record_notice(member, notice_for(mail, "delivered", now))
        except StoreError as exc:
            # The card is out; a missing line on the page is not worth sending it again.
            log.warning("wecom_notice_not_recorded", sink=self._sink, error=str(exc))


def _state(action: str) -> NoticeState:
    return "held" if action == "hold" else "muted"
