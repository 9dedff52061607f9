"""Rendering the /me page and the shared error pages (Jinja2, autoescaped, no build step).

Templates live in `bridge/web/templates/` (package data). Every answer carries headers
that keep it out of caches, frames and referrers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import jinja2
from aiohttp import web

from bridge.delivery.preferences import Notice, Preferences
from bridge.delivery.preferences_rules import zone
from bridge.web.me_forms import form_values
from bridge.web.me_text import ERRORS, TEXT, Lang

__all__ = ["ErrorText", "MeView", "error_page", "html", "me_page"]

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bridge.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class ErrorText:
    """An error page's words: what happened and what to do, in Chinese and English."""

    heading_zh: str
    todo_zh: str
    heading_en: str
    todo_en: str

    @classmethod
    def of(cls, reason: str) -> ErrorText:
        """The /me sign-in error texts (`bridge.web.me_text.ERRORS`)."""
        return cls(*ERRORS[reason])


@dataclass(frozen=True, slots=True)
class MeView:
    """Everything the page shows for one signed-in member."""

    userid: str
    lang: Lang
    csrf: str
    base: str
    mailboxes: Sequence[str]
    notices: Sequence[Notice]
    prefs: Preferences
    saved: bool = False
    error: str = ""
    form: dict[str, str] | None = None  # what was posted, when it could not be saved


def html(status: int, body: str, **headers: str) -> web.Response:
    """An HTML answer with the page's security headers."""
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **headers},
    )


def me_page(view: MeView) -> str:
    """The page of one member."""
    tz = zone(view.prefs.timezone)
    notices = [
        {
            "subject": n.subject,
            "sender": n.sender,
            "state": n.state,
            "when": datetime.fromtimestamp(n.at, tz).strftime("%Y-%m-%d %H:%M"),
        }
        for n in view.notices
    ]
    return _ENV.get_template("me.html").render(
        html_lang="zh-CN" if view.lang == "zh" else "en",
        page_title=TEXT[view.lang]["title"],
        t=TEXT[view.lang],
        userid=view.userid,
        csrf=view.csrf,
        base=view.base,
        mailboxes=view.mailboxes,
        notices=notices,
        form={**form_values(view.prefs), **(view.form or {})},
        saved=view.saved,
        error=view.error,
    )


def error_page(status: int, text: ErrorText, links: Sequence[tuple[str, str]] = ()) -> web.Response:
    """A page in the page's look saying, in Chinese and English, what happened and what to
    do, with optional links `(href, label)`."""
    body = _ENV.get_template("error.html").render(
        html_lang="zh-CN",
        page_title=f"{text.heading_zh} / {text.heading_en}",
        heading_zh=text.heading_zh,
        todo_zh=text.todo_zh,
        heading_en=text.heading_en,
        todo_en=text.todo_en,
        links=list(links),
    )
    return html(status, body)
