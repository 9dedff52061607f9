"""Events: CloudEvents shape, stable ids, sender parsing, routing and backoff."""

from __future__ import annotations

import pytest

from bridge import events
from bridge.backoffs import Backoff
from bridge.config import RouteConfig
from bridge.dispatch import next_try_delay_s
from bridge.routing import Router


def _mail(tenant: str = "acme", mail_id: str = "M1", mailbox: str = "bob@acme.com") -> events.Event:
    return events.mail_received(
        tenant=tenant,
        mailbox=mailbox,
        mail_id=mail_id,
        sender='"Test"<test@gzdev.com>',
        to=mailbox,
        subject="TestMail",
        summary="TestMailContent",
        unread_count=549,
    )


def test_cloudevent_shape() -> None:
    """A received mail becomes a CloudEvents 1.0 document with the data DESIGN.md shows."""
    doc = _mail().to_cloudevent()
    assert doc["specversion"] == "1.0"
    assert doc["source"] == "exmail://acme"
    assert doc["type"] == "exmail.mail.received"
    assert doc["subject"] == "bob@acme.com"
    assert doc["time"].endswith("Z")
    assert doc["data"]["from"] == {"name": "Test", "address": "test@gzdev.com"}
    assert doc["data"]["unread_count"] == 549


def test_mail_id_is_stable() -> None:
    """A mail's event id depends on (tenant, mail_id) alone."""
    assert _mail().id == _mail(mailbox="other@acme.com").id
    assert _mail().id != _mail(tenant="beta").id
    assert _mail().id != _mail(mail_id="M2").id


def test_json_round_trip() -> None:
    """An event survives to_json/from_json unchanged."""
    event = _mail()
    assert events.Event.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    ("raw", "name", "address"),
    [
        ('"Test"<test@gzdev.com>', "Test", "test@gzdev.com"),
        ("张三 <zhang@acme.com>", "张三", "zhang@acme.com"),
        ("bare@acme.com", "", "bare@acme.com"),
        ('"" <x@y.cn>', "", "x@y.cn"),
    ],
)
def test_sender_forms(raw: str, name: str, address: str) -> None:
    """`"Name"<addr>`, `Name <addr>` and bare addresses parse into name and address."""
    sender = events.parse_sender(raw)
    assert (sender.name, sender.address, sender.raw) == (name, address, "")


def test_sender_unparseable_kept_raw() -> None:
    """Anything else is kept raw, not dropped."""
    sender = events.parse_sender("garbage <<>>")
    assert sender.address == ""
    assert sender.raw == "garbage <<>>"
    assert sender.as_json()["raw"] == "garbage <<>>"


def test_directory_id_from_version() -> None:
    """A directory event's id depends on (tenant, version)."""
    one = events.directory_changed(tenant="a", version="1", added=[], removed=[], modified=[])
    two = events.directory_changed(tenant="a", version="1", added=["x"], removed=[], modified=[])
    assert one.id == two.id


def test_no_routes_means_every_sink() -> None:
    """Without routes every event goes to every sink."""
    router = Router(routes=[], sinks=["a", "b"])
    assert router.sinks_for(_mail()) == ("a", "b")


def test_routes_match_tenant_mailbox_type() -> None:
    """Routes match tenants, mailbox globs and event types; sinks are not repeated."""
    routes = [
        RouteConfig(tenants=("acme",), mailboxes=("*@acme.com",), sinks=("a",)),
        RouteConfig(events=("exmail.mail.unread",), sinks=("b",)),
        RouteConfig(mailboxes=("boss@*",), sinks=("a", "c")),
    ]
    router = Router(routes=routes, sinks=["a", "b", "c"])
    assert router.sinks_for(_mail()) == ("a",)
    assert router.sinks_for(_mail(mailbox="boss@acme.com")) == ("a", "c")
    assert router.sinks_for(_mail(tenant="beta", mailbox="x@beta.com")) == ()


def test_backoff_grows_caps_and_resets() -> None:
    """Delays double up to the cap, with full jitter, and start over after reset."""
    waits = Backoff(base_s=1, cap_s=8, jitter=lambda v: v)
    assert [waits.next_delay_s() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    waits.reset()
    assert waits.next_delay_s() == 1
    jittered = Backoff(base_s=1, cap_s=8)
    assert all(0 <= jittered.next_delay_s() <= 8 for _ in range(20))


def test_backoff_stays_at_the_cap_after_many_failures() -> None:
    """Thousands of failures in a row still give the cap (no overflow of base·2ⁿ)."""
    waits = Backoff(base_s=1, cap_s=60, jitter=lambda v: v)
    assert [waits.next_delay_s() for _ in range(5000)][-1] == 60


def test_retry_ladder() -> None:
    """The ladder gives the next rung's delay, honours Retry-After, and ends."""
    ladder = (0.0, 5.0, 300.0)
    fixed = lambda lo, hi: 1.0  # noqa: E731
    assert next_try_delay_s(ladder, 0, None, fixed) == 5.0
    assert next_try_delay_s(ladder, 0, 60.0, fixed) == 60.0
    assert next_try_delay_s(ladder, 1, None, fixed) == 300.0
    assert next_try_delay_s(ladder, 2, None, fixed) is None
