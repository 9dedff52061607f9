"""What a member's preferences say about one mail, now: deliver, hold until when, or mute.

Pure functions of (preferences, mail, time); the store and the sink live elsewhere.

- A VIP sender (address glob) always notifies at once: in quiet hours, while muted, in
  digest mode, and even when a muted keyword matches ("always" means always).
- A muted sender or a muted subject keyword never notifies: the mail is skipped and
  the skip recorded.
- Otherwise the mail is held while a hold applies (mute until, quiet hours, the digest
  schedule) and goes out in one digest card at `release_at`.

`release_at(prefs, since)` is computed from when the oldest held mail was held, with
the preferences as they are now: a member who ends quiet hours early releases the
held mails at once, one who extends them keeps them longer.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.delivery.preferences import DEFAULT_TIMEZONE, Preferences

__all__ = ["DAILY_DIGEST_AT", "MailFacts", "Verdict", "release_at", "verdict", "zone"]

DAILY_DIGEST_AT = time(9, 0)  # a daily digest arrives at 09:00 in the member's time zone
_MAX_STEPS = 8  # holds that keep pushing each other stop here; the member sees the mail late


@dataclass(frozen=True, slots=True)
class MailFacts:
    """What the rules look at: the sender's address and the subject."""

    sender: str
    subject: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """`deliver` now, `hold` until `until` (unix s), or `mute`; `why` for logs and tests."""

    action: Literal["deliver", "hold", "mute"]
    why: str
    until: float | None = None


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or Asia/Shanghai when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def matches(globs: tuple[str, ...], address: str) -> bool:
    """Whether `address` matches one of `globs` (case-insensitive, `*` and `?`)."""
    wanted = address.strip().lower()
    return bool(wanted) and any(fnmatch.fnmatchcase(wanted, g.strip().lower()) for g in globs)


def _muted_keyword(keywords: tuple[str, ...], subject: str) -> bool:
    folded = subject.casefold()
    return any(k.strip() and k.strip().casefold() in folded for k in keywords)


def verdict(prefs: Preferences, mail: MailFacts, now: float) -> Verdict:
    """What to do with `mail` at unix time `now`."""
    if matches(prefs.vip_senders, mail.sender):
        return Verdict("deliver", "vip")
    if matches(prefs.muted_senders, mail.sender):
        return Verdict("mute", "muted sender")
    if _muted_keyword(prefs.muted_keywords, mail.subject):
        return Verdict("mute", "muted keyword")
    until = release_at(prefs, now)
    if until > now:
        return Verdict("hold", _hold_reason(prefs, now), until)
    return Verdict("deliver", "no hold")


def _hold_reason(prefs: Preferences, now: float) -> str:
    if prefs.mute_until is not None and now < prefs.mute_until:
        return "muted until"
    if _quiet_end(prefs, now) is not None:
        return "quiet hours"
    return f"{prefs.digest} digest"


def release_at(prefs: Preferences, since: float) -> float:
    """The first unix time at or after `since` when no hold applies any more."""
    at = since
    first_digest = True
    for _ in range(_MAX_STEPS):
        moved = at
        if prefs.mute_until is not None and moved < prefs.mute_until:
            moved = prefs.mute_until
        moved = _quiet_end(prefs, moved) or moved
        if prefs.digest != "off":
            moved = _digest_boundary(prefs, moved, strictly_after=first_digest)
            first_digest = False
        if moved == at:
            break
        at = moved
    return at


def _quiet_end(prefs: Preferences, at: float) -> float | None:
    """When the quiet hours around `at` end, or None when `at` is outside them."""
    if not prefs.has_quiet_hours or prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    tz = zone(prefs.timezone)
    local = datetime.fromtimestamp(at, tz)
    start, end, now = prefs.quiet_start, prefs.quiet_end, local.time()
    if start < end:
        inside, end_day = start <= now < end, local.date()
    else:  # the window crosses midnight, e.g. 22:00-07:00
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz).timestamp()


def _digest_boundary(prefs: Preferences, at: float, *, strictly_after: bool) -> float:
    """The next digest time at (or strictly after) `at`: a full hour, or 09:00 daily."""
    tz = zone(prefs.timezone)
    local = datetime.fromtimestamp(at, tz)
    if prefs.digest == "hourly":
        boundary = local.replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
    else:
        boundary = datetime.combine(local.date(), DAILY_DIGEST_AT, tzinfo=tz)
        step = timedelta(days=1)
    while boundary < local or (strictly_after and boundary == local):
        boundary += step
    return boundary.timestamp()
