"""The preferences form: posted fields -> `Preferences`, or InvalidPreferences naming the
field. Nothing is saved unless every field is usable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.delivery.preferences import DEFAULT_TIMEZONE, DIGESTS, Digest, Preferences
from bridge.delivery.preferences_rules import zone
from bridge.errors import InvalidPreferences

__all__ = ["MAX_ENTRIES", "form_values", "parse_preferences"]

MAX_ENTRIES = 50
MAX_ENTRY_CHARS = 200
_SPLIT = re.compile(r"[\n,;，；]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_preferences(form: Mapping[str, str], now: float) -> Preferences:
    """Validate a posted form; times of day and `mute_until` are in its `timezone`."""
    timezone = _timezone(form.get("timezone", ""))
    start = _clock("quiet_start", form.get("quiet_start", ""))
    end = _clock("quiet_end", form.get("quiet_end", ""))
    if (start is None) != (end is None):
        raise InvalidPreferences("quiet_end", "give both ends of the quiet hours, or neither")
    digest = form.get("digest", "off")
    if digest not in DIGESTS:
        raise InvalidPreferences("digest", "must be off, hourly or daily")
    return Preferences(
        mute_until=_mute_until(form.get("mute_until", ""), timezone, now),
        quiet_start=start,
        quiet_end=end,
        timezone=timezone,
        vip_senders=_entries("vip_senders", form.get("vip_senders", ""), addresses=True),
        muted_senders=_entries("muted_senders", form.get("muted_senders", ""), addresses=True),
        muted_keywords=_entries("muted_keywords", form.get("muted_keywords", ""), addresses=False),
        digest=cast(Digest, digest),
    )


def _timezone(raw: str) -> str:
    name = raw.strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPreferences("timezone", f"unknown time zone {name[:60]!r}") from None
    return name


def _clock(field: str, raw: str) -> time | None:
    if not raw.strip():
        return None
    try:
        return time.fromisoformat(raw.strip()).replace(second=0, microsecond=0)
    except ValueError:
        raise InvalidPreferences(field, "must be a time of day like 22:00") from None


def _mute_until(raw: str, timezone: str, now: float) -> float | None:
    if not raw.strip():
        return None
    try:
        local = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidPreferences("mute_until", "must be a date and time") from None
    at = local.replace(tzinfo=ZoneInfo(timezone)).timestamp()
    return at if at > now else None  # a time already past is no pause at all


def _entries(field: str, raw: str, *, addresses: bool) -> tuple[str, ...]:
    found: list[str] = []
    for item in _SPLIT.split(raw):
        entry = item.strip()
        if not entry:
            continue
        if len(entry) > MAX_ENTRY_CHARS or _CONTROL.search(entry):
            raise InvalidPreferences(field, f"entry {entry[:40]!r} is too long or not text")
        if addresses and (" " in entry or "\t" in entry):
            raise InvalidPreferences(field, f"{entry[:40]!r} is not an address or glob")
        value = entry.lower() if addresses else entry
        if value not in found:
            found.append(value)
    if len(found) > MAX_ENTRIES:
        raise InvalidPreferences(field, f"at most {MAX_ENTRIES} entries")
    return tuple(found)


def form_values(prefs: Preferences) -> dict[str, str]:
    """What the form shows for saved preferences (inverse of `parse_preferences`)."""
    tz = zone(prefs.timezone)
    mute = ""
    if prefs.mute_until is not None:
        mute = datetime.fromtimestamp(prefs.mute_until, tz).strftime("%Y-%m-%dT%H:%M")
    return {
        "mute_until": mute,
        "quiet_start": prefs.quiet_start.strftime("%H:%M") if prefs.quiet_start else "",
        "quiet_end": prefs.quiet_end.strftime("%H:%M") if prefs.quiet_end else "",
        "timezone": prefs.timezone,
        "vip_senders": "\n".join(prefs.vip_senders),
        "muted_senders": "\n".join(prefs.muted_senders),
        "muted_keywords": "\n".join(prefs.muted_keywords),
        "digest": prefs.digest,
    }
