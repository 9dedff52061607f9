"""Unread baselines: the last unread count committed per watched mailbox.

Every source compares what the upstream says now with the stored baseline, announces a
rise as `exmail.mail.unread`, and commits the new counts together with those events (one
store transaction), so mail that arrived while no replica ran is announced once: a crash
before the commit repeats the comparison, a crash after it finds the new baseline.
Mailbox keys are lower-cased; a mailbox without a baseline is recorded, not announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from bridge import events
from bridge.events import Event

__all__ = [
    "changed_counts",
    "is_glob",
    "normalise",
    "resolve_watch",
    "unread_rises",
    "watched_count",
]

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether a `watch` entry is a pattern ("*@globex.com") rather than one mailbox."""
    return not _GLOB_CHARS.isdisjoint(pattern)


def _matches(mailbox: str, watch: Iterable[str]) -> bool:
    key = mailbox.lower()
    return any(fnmatchcase(key, w.lower()) if is_glob(w) else key == w.lower() for w in watch)


def resolve_watch(watch: Iterable[str], known: Iterable[str]) -> list[str]:
    """The mailboxes `watch` names: its plain entries, and each `known` mailbox that one of
    its patterns matches (lower-cased, sorted, each once)."""
    entries = list(watch)
    plain = {w.lower() for w in entries if not is_glob(w)}
    patterns = [w for w in entries if is_glob(w)]
    return sorted(plain | {m.lower() for m in known if _matches(m, patterns)})


def normalise(counts: Mapping[str, int]) -> dict[str, int]:
    """`counts` keyed by lower-cased mailbox."""
    return {mailbox.lower(): count for mailbox, count in counts.items()}


def unread_rises(
    tenant: str, counts: Mapping[str, int], baselines: Mapping[str, int], *, reason: str
) -> list[Event]:
    """An `exmail.mail.unread` event for each mailbox whose count rose above its baseline."""
    found = []
    for mailbox, count in normalise(counts).items():
        previous = baselines.get(mailbox)
        if previous is not None and count > previous:
            found.append(
                events.unread_changed(
                    tenant=tenant,
                    mailbox=mailbox,
                    unread_count=count,
                    previous=previous,
                    reason=reason,
                )
            )
    return found


def changed_counts(counts: Mapping[str, int], baselines: Mapping[str, int]) -> dict[str, int]:
    """The counts that differ from (or are missing in) the stored baselines."""
    return {m: c for m, c in normalise(counts).items() if baselines.get(m) != c}


def watched_count(watch: Iterable[str], mailbox: str, count: int | None) -> dict[str, int]:
    """`{mailbox: count}` when `mailbox` is watched and the count is known, else empty."""
    if count is None or not watch or not _matches(mailbox, watch):  # most watch none
        return {}
    return {mailbox.lower(): count}
