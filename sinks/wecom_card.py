"""WeCom `textcard` bodies for one mail or a digest of several, within WeCom's byte limits.

WeCom counts UTF-8 bytes: title <= 128 B, description <= 512 B, url <= 2048 B, and
`btntxt` <= 4 characters. Text is cut by bytes, never inside a character, and user text in
the description (which WeCom renders as limited HTML) is escaped, never cut inside an
entity. Control, zero-width and bidi characters in the sender's text become spaces.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DESCRIPTION_MAX_B",
    "TITLE_MAX_B",
    "URL_MAX_B",
    "Card",
    "MailLine",
    "cut_bytes",
    "digest_card",
    "mail_card",
    "settings_link",
]

TITLE_MAX_B = 128
DESCRIPTION_MAX_B = 512
URL_MAX_B = 2048
_ELLIPSIS = "…"
_NO_SUBJECT = "(无主题 / no subject)"
_SENDER_MAX_B = 120
# Mail text is the sender's: line breaks and other C0/C1 controls would break a card's
# layout (or be refused by WeCom), and bidi overrides can make a sender look like another.
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]+"
)


def _plain(text: str) -> str:
    """`text` on one line: every run of control characters becomes one space."""
    return _CONTROLS.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class MailLine:
    """What a card says about one mail."""

    sender: str
    subject: str
    summary: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> MailLine:
        """From an `exmail.mail.received` event's data."""
        sender = data.get("from") or {}
        name = _plain(str(sender.get("name") or ""))
        address = _plain(str(sender.get("address") or sender.get("raw") or ""))
        shown = f"{name} <{address}>" if name and address else name or address or "?"
        return cls(
            sender=shown,
            subject=_plain(str(data.get("subject") or "")) or _NO_SUBJECT,
            summary=_plain(str(data.get("summary") or "")),
        )


@dataclass(frozen=True, slots=True)
class Card:
    """A textcard: each field already within its limit."""

    title: str
    description: str
    url: str
    btntxt: str

    def as_json(self) -> dict[str, str]:
        """The `textcard` object of a `message/send` body."""
        return {
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "btntxt": self.btntxt,
        }


def cut_bytes(text: str, limit_b: int, ellipsis: str = _ELLIPSIS) -> str:
    """`text` if it fits in `limit_b` UTF-8 bytes, else its longest prefix + `ellipsis`."""
    raw = text.encode()
    if len(raw) <= limit_b:
        return text
    room = max(limit_b - len(ellipsis.encode()), 0)
    # A cut inside a multi-byte sequence leaves an incomplete tail: "ignore" drops it.
    return raw[:room].decode("utf-8", "ignore") + ellipsis


def _fit_html(text: str, limit_b: int) -> str:
    """`text` HTML-escaped within `limit_b` bytes, cut before the escaping (never mid-entity)."""
    escaped = html.escape(text, quote=False)
    if len(escaped.encode()) <= limit_b:
        return escaped
    low, high = 0, len(text)  # the longest prefix whose escaped form + "…" fits
    while low < high:
        mid = (low + high + 1) // 2
        if len(html.escape(text[:mid], quote=False).encode()) + 3 <= limit_b:
            low = mid
        else:
            high = mid - 1
    return html.escape(text[:low], quote=False) + _ELLIPSIS if limit_b >= 3 else ""


def _div(css: str, text: str, limit_b: int) -> str:
    head, tail = f'<div class="{css}">', "</div>"
    room = limit_b - len(head.encode()) - len(tail.encode())
    return f"{head}{_fit_html(text, room)}{tail}" if room > 3 else ""


def settings_link(url: str) -> str:
    """The "通知设置" line under a card's text: a link to the member's /me page."""
    return f'<div class="gray"><a href="{html.escape(url)}">通知设置</a></div>'


def mail_card(line: MailLine, *, url: str, btntxt: str, footer: str = "") -> Card:
    """The card for one new mail: subject as title, sender and summary below, then
    `footer` (e.g. `settings_link`), which always fits."""
    sender = _div("gray", line.sender, _SENDER_MAX_B)
    room = DESCRIPTION_MAX_B - len(sender.encode()) - len(footer.encode())
    summary = _div("normal", line.summary, room) if line.summary else ""
    return Card(
        title=cut_bytes(line.subject, TITLE_MAX_B),
        description=sender + summary + footer,
        url=_checked_url(url),
        btntxt=btntxt[:4],
    )


def digest_card(lines: Sequence[MailLine], *, url: str, btntxt: str, footer: str = "") -> Card:
    """One card for a burst: "N 封新邮件", then the newest mails' senders and subjects,
    then `footer`."""
    count = len(lines)
    title = cut_bytes(f"{count} 封新邮件 / {count} new mails", TITLE_MAX_B)
    parts: list[str] = []
    used_b = len(footer.encode())
    for shown, line in enumerate(reversed(lines)):
        rest = count - shown
        more = _div("gray", f"… 另有 {rest} 封 / {rest} more", 64) if rest > 1 else ""
        part = _div("normal", f"{_short_sender(line.sender)}: {line.subject}", 100)
        if used_b + len(part.encode()) + len(more.encode()) > DESCRIPTION_MAX_B:
            parts.append(more or _div("gray", f"… 另有 {rest} 封 / {rest} more", 64))
            break
        parts.append(part)
        used_b += len(part.encode())
    description = "".join(parts) + footer
    return Card(title=title, description=description, url=_checked_url(url), btntxt=btntxt[:4])


def _short_sender(sender: str) -> str:
    """The display name alone when there is one."""
    name, _, _ = sender.partition(" <")
    return name or sender


def _checked_url(url: str) -> str:
    if len(url.encode()) > URL_MAX_B:
        raise ValueError(f"click-through URL is {len(url.encode())} bytes, WeCom allows 2048")
    return url
