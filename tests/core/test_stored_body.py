"""A claimed delivery is posted as the very bytes its outbox row holds, not re-serialised."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from bridge import events
from bridge.events import Event
from bridge.store.base import Routed, Store
from sinks.signing import verify
from tests.core.test_dispatch import SINK, Receiver, dispatching
from tests.core.test_listener import until

SECRET = "whsec_dGVzdC1zZWNyZXQ="  # the secret `dispatching` configures


@dataclass
class RawReceiver(Receiver):
    """Also keeps each request's body bytes and whether its signature verified."""

    bodies: list[bytes] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the raw body, then answer as the plain receiver does."""
        body = await request.read()
        self.bodies.append(body)
        self.verified.append(verify([SECRET], request.headers, body))
        return await super().handle(request)


def _stored_form() -> bytes:
    """An event's JSON as another writer may have stored it: same document, other bytes
    (keys in another order, spaces) than `Event.to_json` would make."""
    built = events.mail_received(
        tenant="acme",
        mailbox="a@acme.com",
        mail_id="M-stored",
        sender="b@acme.com",
        to="a@acme.com",
        subject="kept as stored",
        summary="",
        unread_count=1,
    )
    doc = orjson.loads(built.to_json())
    return (
        b"{\n "
        + b",\n ".join(
            orjson.dumps(key) + b": " + orjson.dumps(doc[key]) for key in reversed(list(doc))
        )
        + b"\n}"
    )


def test_an_event_read_from_json_serialises_to_those_bytes() -> None:
    """from_json keeps the bytes it read; a changed copy serialises itself afresh."""
    raw = _stored_form()
    event = Event.from_json(raw)
    assert event.to_json() == raw
    assert event == Event.from_json(event.to_json())  # the bytes do not take part in ==
    changed = dataclasses.replace(event, mailbox="c@acme.com")
    assert orjson.loads(changed.to_json())["subject"] == "c@acme.com"


async def test_the_webhook_posts_the_stored_bytes_signed(store: Store) -> None:
    """The receiver gets byte-for-byte what the outbox row holds, with a valid signature."""
    raw = _stored_form()
    receiver = RawReceiver(plan=lambda _mailbox, _attempt: (204, {}))
    await store.commit("acme", [Routed(event=Event.from_json(raw), sinks=(SINK,))])
    async with dispatching(store, receiver, retry_s=[0, 1]):
        await until(lambda: _got(receiver))
    assert receiver.bodies == [raw]
    assert receiver.verified == [True]


async def _got(receiver: RawReceiver) -> bool:
    return bool(receiver.bodies)
