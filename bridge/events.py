"""Events the bridge emits: CloudEvents 1.0 documents with stable ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "DIRECTORY_CHANGED",
    "MAIL_RECEIVED",
    "MAIL_UNREAD",
    "Event",
    "Sender",
    "directory_changed",
    "event_id",
    "mail_received",
    "parse_sender",
    "unread_changed",
]

MAIL_RECEIVED = "exmail.mail.received"
MAIL_UNREAD = "exmail.mail.unread"
DIRECTORY_CHANGED = "exmail.directory.changed"
EVENT_TYPES = (MAIL_RECEIVED, MAIL_UNREAD, DIRECTORY_CHANGED)

# Fixed namespace: ids must stay the same across versions and replicas.
_NAMESPACE = uuid.UUID("5b0c3d0e-8f7a-4d52-9a57-65786d61696c")
_SENDER_RE = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<addr>[^<>\s]+@[^<>\s]+)>\s*$')
_BARE_RE = re.compile(r"^\s*(?P<addr>[^<>\s\"]+@[^<>\s\"]+)\s*$")


@dataclass(frozen=True, slots=True)
class Sender:
    """A parsed `Sender`: name and address, or the raw text when it could not be parsed."""

    name: str
    address: str
    raw: str = ""

    def as_json(self) -> dict[str, str]:
        """The `from` object of an event's data."""
        out = {"name": self.name, "address": self.address}
        if self.raw:
            out["raw"] = self.raw
        return out


@dataclass(frozen=True, slots=True)
class Event:
    """One CloudEvent. `data` is JSON-ready; `tenant` and `mailbox` are routing keys."""

    id: str
    type: str
    tenant: str
    mailbox: str
    time: str
    data: Mapping[str, Any] = field(default_factory=dict)
    # The bytes `from_json` read, so an event claimed from an outbox is sent exactly as it
    # was committed, without serialising it again. Not an init field: a built or replaced
    # event has none and serialises itself.
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def source(self) -> str:
        """The CloudEvents `source`: `exmail://<tenant>`."""
        return f"exmail://{self.tenant}"

    def to_cloudevent(self) -> dict[str, Any]:
        """The structured-mode CloudEvents document."""
        doc: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": dict(self.data),
        }
        if self.mailbox:
            doc["subject"] = self.mailbox
        return doc

    def to_json(self) -> bytes:
        """The CloudEvents document as compact JSON bytes (for an event read with
        `from_json`: the very bytes it was read from)."""
        if self._json is not None:
            return self._json
        return orjson.dumps(self.to_cloudevent())

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Inverse of `to_json`; the event keeps `raw` as its serialised form."""
        doc = orjson.loads(raw)
        event = cls(
            id=doc["id"],
            type=doc["type"],
            tenant=doc["source"].removeprefix("exmail://"),
            mailbox=doc.get("subject", ""),
            time=doc["time"],
            data=doc.get("data") or {},
        )
        object.__setattr__(event, "_json", raw if isinstance(raw, bytes) else raw.encode())
        return event


def now_iso(now: datetime | None = None) -> str:
    """RFC 3339 UTC time with milliseconds, as CloudEvents `time` wants."""
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(tenant: str, *parts: str) -> str:
    """A stable id from the tenant and the parts that identify the happening."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((tenant, *parts))))


def parse_sender(raw: str) -> Sender:
    """Parse `"Name"<addr>`, `Name <addr>` or a bare address; anything else is kept raw."""
    if match := _SENDER_RE.match(raw):
        return Sender(name=match["name"].strip(), address=match["addr"])
    if match := _BARE_RE.match(raw):
        return Sender(name="", address=match["addr"])
    return Sender(name="", address="", raw=raw)


def mail_received(
    *,
    tenant: str,
    mailbox: str,
    mail_id: str,
    sender: str,
    to: str,
    subject: str,
    summary: str,
    unread_count: int | None,
    time: str | None = None,
) -> Event:
    """`exmail.mail.received`; its id depends on (tenant, mail_id) alone."""
    data: dict[str, Any] = {
        "tenant": tenant,
        "mailbox": mailbox,
        "mail_id": mail_id,
        "from": parse_sender(sender).as_json(),
        "to": to,
        "subject": subject,
        "summary": summary,
        "unread_count": unread_count,
    }
    return Event(
        id=event_id(tenant, "mail", mail_id),
        type=MAIL_RECEIVED,
        tenant=tenant,
        mailbox=mailbox,
        time=time or now_iso(),
        data=data,
    )


def unread_changed(
    *,
    tenant: str,
    mailbox: str,
    unread_count: int,
    previous: int | None,
    reason: str,
    time: str | None = None,
) -> Event:
    """`exmail.mail.unread`; its id depends on (tenant, type, mailbox, count, time)."""
    at = time or now_iso()
    return Event(
        id=event_id(tenant, MAIL_UNREAD, mailbox, str(unread_count), at),
        type=MAIL_UNREAD,
        tenant=tenant,
        mailbox=mailbox,
        time=at,
        data={
            "tenant": tenant,
            "mailbox": mailbox,
            "unread_count": unread_count,
            "previous": previous,
            "reason": reason,
        },
    )


def directory_changed(
    *,
    tenant: str,
    version: str,
    added: list[str],
    removed: list[str],
    modified: list[str],
    time: str | None = None,
    since: str = "",
) -> Event:
    """`exmail.directory.changed`; its id depends on (tenant, type, version), and on the
    version it was diffed against when `since` is given (content hashes can recur)."""
    parts = (version, since) if since else (version,)
    return Event(
        id=event_id(tenant, DIRECTORY_CHANGED, *parts),
        type=DIRECTORY_CHANGED,
        tenant=tenant,
        mailbox="",
        time=time or now_iso(),
        data={
            "tenant": tenant,
            "added": added,
            "removed": removed,
            "modified": modified,
            "version": version,
        },
    )
