"""The Exmail simulator's per-tenant data: mails, directory, push queue (plain data)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bridge.simulator.exmail_faults import Faults, SimSettings

__all__ = ["SimMail", "SimTenant"]


@dataclass(slots=True)
class SimMail:
    """A mail that arrived in a simulated mailbox."""

    mail_id: str
    mailbox: str
    sender: str
    subject: str
    summary: str

    def push(self, new_count: int) -> dict[str, Any]:
        """The listen push announcing this mail."""
        return {
            "UserName": self.mailbox,
            "MailId": self.mail_id,
            "Sender": self.sender,
            "Receiver": self.mailbox,
            "Subject": self.subject,
            "Summary": self.summary,
            "NewCount": new_count,
        }


@dataclass(slots=True)
class SimTenant:
    """One credential's world: its directory, mailboxes and pending pushes."""

    client_id: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: list[tuple[int, int, str]] = field(default_factory=list)  # (ver, action, alias)
    ver: int = 0
    unread: dict[str, int] = field(default_factory=dict)
    mails: dict[str, SimMail] = field(default_factory=dict)
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    faults: Faults | None = None
    settings: SimSettings | None = None
    listen_vers: list[str] = field(default_factory=list)
    listens_connected: int = 0
    auth_keys: dict[str, str] = field(default_factory=dict)  # unused key -> mailbox

    def enqueue(self, push: dict[str, Any], *, front: bool = False) -> None:
        """Queue a push for the next listen and wake any held one."""
        if front:
            self.queue.appendleft(push)
        else:
            self.queue.append(push)
        self.wakeup.set()

    def requeue(self, pushes: list[dict[str, Any]]) -> None:
        """Put pushes that were not fully written back at the head, in order."""
        self.queue.extendleft(reversed(pushes))
        if pushes:
            self.wakeup.set()

    def knows(self, mailbox: str) -> bool:
        """Whether `mailbox` exists (in the directory or has received mail)."""
        return mailbox in self.users or mailbox in self.unread
