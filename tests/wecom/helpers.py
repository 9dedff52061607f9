"""Small builders shared by the WeCom tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bridge.events import Event, mail_received
from sinks.wecom import WecomSink
from tests.plugins.wecom import WecomSim


def mail(
    mailbox: str = "bob@acme.com",
    mail_id: str = "m1",
    *,
    subject: str = "Quarterly report",
    summary: str = "Please find attached.",
    sender: str = '"Alice" <alice@partner.com>',
) -> Event:
    """An `exmail.mail.received` event for tenant `acme`."""
    return mail_received(
        tenant="acme",
        mailbox=mailbox,
        mail_id=mail_id,
        sender=sender,
        to=mailbox,
        subject=subject,
        summary=summary,
        unread_count=1,
    )


def fake_link(event: Event) -> str:
    """A click-through link stand-in: one URL per mail."""
    return f"http://bridge.test/open/{event.data.get('mail_id', '')}"


@asynccontextmanager
async def running_sink(sim: WecomSim, **overrides: Any) -> AsyncIterator[WecomSink]:
    """A started WecomSink against `sim`, sharing its fake clock."""
    sink = WecomSink(config=sim.sink_config(**overrides), link_for=fake_link, clock=sim.clock)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.aclose()
