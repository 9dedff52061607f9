"""The click-through endpoint's answers: 302 redirects and small bilingual HTML pages."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from aiohttp import web

from bridge.config import WecomSinkConfig

__all__ = ["Reason", "forbidden", "oauth_redirect", "redirect", "unavailable"]

Reason = Literal["malformed", "forged", "expired", "tenant", "not_owner", "identity", "no_sso"]


_PAGES: dict[str, tuple[str, str]] = {
    "malformed": ("链接无效。", "This link is not valid."),
    "forged": ("链接签名无效，不是本服务签发的。", "This link was not issued by this service."),
    "expired": (
        "链接已过期，请在邮箱中打开这封邮件。",
        "This link has expired; open the mail in your mailbox.",
    ),
    "tenant": (
        "链接中的企业不在本服务中。",
        "This link names an organisation this service does not serve.",
    ),
    "not_owner": ("这封邮件不属于您的邮箱。", "This mail belongs to someone else's mailbox."),
    "identity": ("无法确认您的企业微信身份。", "Your WeCom identity could not be verified."),
    "no_sso": (
        "此邮箱不支持一键登录，请在企业微信「邮件」中查看。",
        "This mailbox offers no one-click sign-in; open it in WeCom's Mail.",
    ),
    "unavailable": (
        "邮箱暂时无法登录，请稍后再试。",
        "The mailbox cannot be opened right now; try again later.",
    ),
}
_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _page(status: int, reason: str) -> web.Response:
    chinese, english = _PAGES[reason]
    body = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{english}</title></head><body><h1>{chinese}</h1><p>{english}</p>"
        f"<p><small>{reason}</small></p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html", headers=_HEADERS)


def forbidden(reason: Reason) -> web.Response:
    """The 403 page that says why the link was refused, in Chinese and English."""
    return _page(403, reason)


def unavailable() -> web.Response:
    """A 503 page: Exmail or WeCom could not be reached; the link itself is fine."""
    return _page(503, "unavailable")


def redirect(location: str) -> web.Response:
    """A 302 that is never cached and leaks no referrer (the location carries a ticket)."""
    return web.Response(status=302, headers={**_HEADERS, "location": location})


def oauth_redirect(config: WecomSinkConfig, back_url: str) -> web.Response:
    """A 302 to WeCom's OAuth page, which comes back to `back_url` with `code`."""
    query = urlencode(
        {
            "appid": config.corp_id,
            "redirect_uri": back_url,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": "open",
            "agentid": str(config.agent_id),
        }
    )
    return redirect(f"{config.oauth_url}?{query}#wechat_redirect")
