"""What a callback message becomes: the same events the legacy listener emits."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge import events
from bridge.config import TenantConfig
from bridge.events import Event
from bridge.exmail_api.callback_xml import ApiMail, ApiUnread

__all__ = ["event_of"]


def _time(time_s: int | None) -> str | None:
    """Tencent's `Time` (unix seconds) as the event time; None (= now) when absent or absurd."""
    if time_s is None or not 0 < time_s < 1 << 33:
        return None
    return events.now_iso(datetime.fromtimestamp(time_s, UTC))


def event_of(tenant: TenantConfig, push: ApiMail | ApiUnread) -> Event:
    """`exmail.mail.received` (id from tenant + MailID) or `exmail.mail.unread`.

    An UnRead's id includes Tencent's `Time`, so the same callback delivered twice is
    one event.
    """
    if isinstance(push, ApiMail):
        return events.mail_received(
            tenant=tenant.name,
            mailbox=push.mailbox,
            mail_id=push.mail_id,
            sender=push.sender,
            to=push.mailbox,
            subject=push.subject,
            summary="",
            unread_count=push.new_count,
            time=_time(push.time_s),
        )
    return events.unread_changed(
        tenant=tenant.name,
        mailbox=push.mailbox,
        unread_count=push.unread_count,
        previous=None,
        reason="push",
        time=_time(push.time_s),
    )
