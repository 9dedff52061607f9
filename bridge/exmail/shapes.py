"""JSON objects from Exmail turned into typed values, tolerant of the protocol's type drift.

`Ver` arrives as a string in pushes and a number in `user/list`; `NewCount` as a number or
a numeric string. Versions are kept as strings of digits, counts as ints. Unknown keys are
ignored. A value that cannot be read raises `ShapeError` (a ValueError).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bridge.exmail.pushes import Heartbeat, MailPush, Push, UnknownPush, UnreadPush, VersionPush

__all__ = [
    "DirectoryDelta",
    "ShapeError",
    "UserInfo",
    "as_count",
    "as_lifetime_s",
    "as_version",
    "auth_key_of",
    "delta_of",
    "push_of",
    "user_of",
]

_AUTH_KEY_NAMES = ("auth_key", "authkey", "AuthKey")
_ACTION_DELETED, _ACTION_ADDED, _ACTION_MODIFIED = 1, 2, 3


class ShapeError(ValueError):
    """A JSON value did not have the shape an endpoint promises."""


@dataclass(frozen=True, slots=True)
class DirectoryDelta:
    """`user/list`: the directory changes after a version, and the new version."""

    ver: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """`user/get`: one account of the directory."""

    alias: str
    name: str
    gender: int
    slaves: tuple[str, ...]
    position: str
    tel: str
    mobile: str
    ext_id: str
    parties: tuple[str, ...]
    enabled: bool


def as_version(value: Any) -> str:
    """A version (string or number) as a string of digits."""
    if isinstance(value, bool):
        raise ShapeError("version is a boolean")
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text.isdigit():
        raise ShapeError("version is not a non-negative integer")
    return str(int(text))


def as_count(value: Any) -> int:
    """A count (number or numeric string) as an int."""
    if isinstance(value, bool):
        raise ShapeError("count is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ShapeError("count is not an integer")


def as_lifetime_s(value: Any, default_s: float) -> float:
    """A token's `expires_in` in seconds: a finite positive number (or numeric string),
    else `default_s`. "nan" would make every use refetch; "inf", never refresh."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default_s
    try:
        seconds = float(value)
    except ValueError:
        return default_s
    return seconds if math.isfinite(seconds) and seconds > 0 else default_s


def push_of(obj: Any) -> Push:
    """The typed push for one listen object; `UnknownPush` for any other shape."""
    if not isinstance(obj, dict):
        return UnknownPush(keys=())
    try:
        return _known_push(obj)
    except ShapeError:
        return UnknownPush(keys=tuple(sorted(str(k) for k in obj)))


def _known_push(obj: dict[str, Any]) -> Push:
    if "MailId" in obj and "UserName" in obj:
        count = obj.get("NewCount")
        return MailPush(
            mailbox=_name(obj["UserName"]),
            mail_id=_name(obj["MailId"]),
            sender=_text(obj.get("Sender", "")),
            receiver=_text(obj.get("Receiver", "")),
            subject=_text(obj.get("Subject", "")),
            summary=_text(obj.get("Summary", "")),
            new_count=None if count is None else as_count(count),
        )
    if "UserName" in obj and "NewCount" in obj:
        return UnreadPush(mailbox=_name(obj["UserName"]), new_count=as_count(obj["NewCount"]))
    if "Ver" in obj:
        return VersionPush(ver=as_version(obj["Ver"]))
    if obj.get("Ret") in (0, "0"):
        return Heartbeat()
    raise ShapeError("unknown push")


def delta_of(obj: Any) -> DirectoryDelta:
    """The typed `user/list` answer."""
    if not isinstance(obj, dict) or "Ver" not in obj:
        raise ShapeError("user/list answer without Ver")
    by_action: dict[int, list[str]] = {_ACTION_DELETED: [], _ACTION_ADDED: [], _ACTION_MODIFIED: []}
    for item in obj.get("List") or ():
        if not isinstance(item, dict):
            raise ShapeError("user/list item is not an object")
        action = as_count(item.get("Action"))
        if action in by_action:
            by_action[action].append(_text(item.get("Alias")))
    return DirectoryDelta(
        ver=as_version(obj["Ver"]),
        added=tuple(by_action[_ACTION_ADDED]),
        removed=tuple(by_action[_ACTION_DELETED]),
        modified=tuple(by_action[_ACTION_MODIFIED]),
    )


def user_of(obj: Any) -> UserInfo:
    """The typed `user/get` answer."""
    if not isinstance(obj, dict) or "Alias" not in obj:
        raise ShapeError("user/get answer without Alias")
    slaves = _text(obj.get("SlaveList") or "")
    parties = (obj.get("PartyList") or {}).get("List") or ()
    return UserInfo(
        alias=_text(obj["Alias"]),
        name=_text(obj.get("Name") or ""),
        gender=as_count(obj.get("Gender") or 0),
        slaves=tuple(s.strip() for s in slaves.split(",") if s.strip()),
        position=_text(obj.get("Position") or ""),
        tel=_text(obj.get("Tel") or ""),
        mobile=_text(obj.get("Mobile") or ""),
        ext_id=_text(obj.get("ExtId") or ""),
        parties=tuple(_text(p.get("Value")) for p in parties if isinstance(p, dict)),
        enabled=as_count(obj.get("OpenType") or 1) != 2,
    )


def auth_key_of(obj: Any) -> str:
    """The login key of a `mail/authkey` answer, under any of its known spellings."""
    if isinstance(obj, dict):
        for name in _AUTH_KEY_NAMES:
            value = obj.get(name)
            if isinstance(value, str) and value:
                return value
    raise ShapeError("mail/authkey answer without a key")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ShapeError("expected a string")


def _name(value: Any) -> str:
    """A mailbox or mail id: an event for "" would reach every sink, with a shared id."""
    text = _text(value).strip()
    if not text:
        raise ShapeError("empty name")
    return text
