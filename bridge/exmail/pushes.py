"""Typed pushes from the `/openapi/listen` channel."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Heartbeat", "MailPush", "Push", "UnknownPush", "UnreadPush", "VersionPush"]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """`{"Ret":0}`: the channel is alive."""


@dataclass(frozen=True, slots=True)
class VersionPush:
    """`{"Ver": ...}`: the directory changed; `ver` is a string of digits."""

    ver: str


@dataclass(frozen=True, slots=True)
class MailPush:
    """One new mail in `mailbox`."""

    mailbox: str
    mail_id: str
    sender: str
    receiver: str
    subject: str
    summary: str
    new_count: int | None


@dataclass(frozen=True, slots=True)
class UnreadPush:
    """The unread count of `mailbox` changed."""

    mailbox: str
    new_count: int


@dataclass(frozen=True, slots=True)
class UnknownPush:
    """A JSON object of a shape we do not know; `keys` are its sorted top-level keys."""

    keys: tuple[str, ...]


Push = Heartbeat | VersionPush | MailPush | UnreadPush | UnknownPush
