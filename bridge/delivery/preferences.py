"""A WeCom member's notification preferences and what the page shows: typed values.

A member is named by `member_key(corp_id, userid)`: one person in one corp, whichever
WeCom app of that corp sends the cards. Preferences are stored as JSON; an unknown key
is ignored so an older replica can read what a newer one wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import time
from typing import Any, Literal, get_args

import orjson

from bridge.events import Event

__all__ = [
    "DEFAULT_TIMEZONE",
    "Digest",
    "Held",
    "Notice",
    "NoticeState",
    "Preferences",
    "member_key",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
Digest = Literal["off", "hourly", "daily"]
NoticeState = Literal["delivered", "held", "muted"]
DIGESTS: tuple[str, ...] = get_args(Digest)


def member_key(corp_id: str, userid: str) -> str:
    """The store's name for one member of one corp (WeCom userids are case-insensitive)."""
    return f"{corp_id}/{userid.lower()}"


def _clock(value: Any) -> time | None:
    return time.fromisoformat(value) if isinstance(value, str) and value else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class Preferences:
    """What one member asked for. Times of day are in `timezone`; `mute_until` is unix s."""

    mute_until: float | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str = DEFAULT_TIMEZONE
    vip_senders: tuple[str, ...] = ()
    muted_senders: tuple[str, ...] = ()
    muted_keywords: tuple[str, ...] = ()
    digest: Digest = "off"

    @property
    def has_quiet_hours(self) -> bool:
        """Both ends set and different."""
        return (
            self.quiet_start is not None
            and self.quiet_end is not None
            and self.quiet_start != self.quiet_end
        )

    def to_json(self) -> bytes:
        """The stored form."""
        return orjson.dumps(
            {
                "mute_until": self.mute_until,
                "quiet_start": self.quiet_start.isoformat("minutes") if self.quiet_start else "",
                "quiet_end": self.quiet_end.isoformat("minutes") if self.quiet_end else "",
                "timezone": self.timezone,
                "vip_senders": list(self.vip_senders),
                "muted_senders": list(self.muted_senders),
                "muted_keywords": list(self.muted_keywords),
                "digest": self.digest,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Preferences:
        """Inverse of `to_json`; a value it cannot read falls back to the default."""
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            return cls()
        mute = doc.get("mute_until")
        digest = doc.get("digest")
        return cls(
            mute_until=float(mute) if isinstance(mute, int | float) else None,
            quiet_start=_clock(doc.get("quiet_start")),
            quiet_end=_clock(doc.get("quiet_end")),
            timezone=str(doc.get("timezone") or DEFAULT_TIMEZONE),
            vip_senders=_strings(doc.get("vip_senders")),
            muted_senders=_strings(doc.get("muted_senders")),
            muted_keywords=_strings(doc.get("muted_keywords")),
            digest=digest if digest in DIGESTS else "off",
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """One line of the page's "recent notifications": a mail and what became of it."""

    event_id: str
    mailbox: str
    sender: str
    subject: str
    at: float  # unix seconds the mail arrived
    state: NoticeState

    def with_state(self, state: NoticeState) -> Notice:
        """The same mail in another state."""
        return replace(self, state=state)

    def to_json(self) -> bytes:
        """The stored form."""
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "mailbox": self.mailbox,
                "sender": self.sender,
                "subject": self.subject,
                "at": self.at,
                "state": self.state,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Notice:
        """Inverse of `to_json`."""
        doc = orjson.loads(raw)
        return cls(
            event_id=str(doc["event_id"]),
            mailbox=str(doc["mailbox"]),
            sender=str(doc["sender"]),
            subject=str(doc["subject"]),
            at=float(doc["at"]),
            state=doc["state"],
        )


@dataclass(frozen=True, slots=True)
class Held:
    """A mail event kept back for a member, and when it was held (unix seconds)."""

    event: Event
    held_at: float
