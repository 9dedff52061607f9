"""A plain `text` message for tenants whose mail cannot open in one click.

`wecom-mail` tenants (WeCom-native mail) offer no single sign-on, so their messages carry
no button: a `textcard` needs a URL, so they are `text` messages that say what happened and
why there is no button. They are also the only news such a tenant has: its source polls
counts, so a rise of the unread count (`exmail.mail.unread`) is announced here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.events import MAIL_UNREAD, Event
from sinks.wecom_card import MailLine, cut_bytes

__all__ = ["CONTENT_MAX_B", "is_news", "notice"]

CONTENT_MAX_B = 2048  # WeCom's limit for a text message's content
LINE_MAX_B = 300  # six lines and the explanation always fit
WHY = (
    "企业微信邮箱不支持一键打开邮件，请在企业微信「邮件」中查看。\n"
    "WeCom Mail offers no one-click sign-in: open it in WeCom's Mail."
)


def is_news(event: Event) -> bool:
    """An unread event worth a message: the count rose (or nothing was known before)."""
    if event.type != MAIL_UNREAD:
        return False
    count, previous = event.data.get("unread_count"), event.data.get("previous")
    return isinstance(count, int) and count > 0 and (previous is None or count > previous)


def _line(event: Event) -> str:
    if event.type == MAIL_UNREAD:
        count = event.data.get("unread_count")
        return cut_bytes(f"{event.mailbox}: {count} 封未读邮件 / {count} unread", LINE_MAX_B)
    mail = MailLine.from_data(event.data)
    return cut_bytes(f"{mail.sender}: {mail.subject}", LINE_MAX_B)


def notice(events: Sequence[Event]) -> dict[str, str]:
    """The `text` body of one message for `events` (newest last), within WeCom's limit."""
    lines = [_line(event) for event in events[-5:]]
    if len(events) > 5:
        lines.insert(0, f"… {len(events) - 5} more")
    return {"content": cut_bytes("\n".join(lines) + "\n\n" + WHY, CONTENT_MAX_B)}
