"""The click-through endpoint's answers: 302 redirects, and refusal pages in the /me page's
look that say in plain Chinese and English what happened and what to do."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from aiohttp import web

from bridge.config import WecomSinkConfig
from bridge.web.me_page import ErrorText, error_page

__all__ = ["Reason", "forbidden", "oauth_redirect", "redirect", "unavailable"]

Reason = Literal["malformed", "forged", "expired", "tenant", "not_owner", "identity", "no_sso"]


_EXMAIL = ("https://exmail.qq.com/", "打开腾讯企业邮 / Open Exmail")
# reason -> what happened and what to do, in plain Chinese, then English (ErrorText order).
_PAGES: dict[str, ErrorText] = {
    "malformed": ErrorText(
        "这个链接不完整",
        "链接可能在复制或转发时被截断了。请在企业邮箱中直接打开这封邮件。",
        "This link is incomplete",
        "It may have been cut off when it was copied or forwarded. Open the mail in Exmail.",
    ),
    "forged": ErrorText(
        "这个链接不是本服务签发的",
        "为了您邮箱的安全，它没有被打开。请在企业邮箱中直接打开这封邮件。",
        "This link was not issued by this service",
        "To keep your mailbox safe it was not opened. Open the mail in Exmail instead.",
    ),
    "expired": ErrorText(
        "链接已过期",
        "通知卡片里的链接只在一段时间内有效。请在企业邮箱中打开这封邮件，或等新的通知卡片。",
        "This link has expired",
        "Links in notification cards work for a limited time. Open the mail in Exmail, "
        "or wait for a fresh card.",
    ),
    "tenant": ErrorText(
        "这封邮件所在的企业不由本服务管理",
        "请在企业邮箱中直接打开这封邮件。",
        "This link names an organisation this service does not serve",
        "Open the mail in Exmail directly.",
    ),
    "not_owner": ErrorText(
        "这封邮件不属于您的邮箱",
        "通知卡片只能由收件人本人打开。如果这是您的邮件，请用您自己的企业微信账号打开。",
        "This mail belongs to someone else's mailbox",
        "A card opens only for the person it was sent to. If it is yours, open it with "
        "your own WeCom account.",
    ),
    "identity": ErrorText(
        "无法确认您的企业微信身份",
        "请在企业微信中重新点开这张卡片；如果仍然不行，请在企业邮箱中直接打开邮件。",
        "Your WeCom identity could not be verified",
        "Tap the card again inside WeCom; if that fails too, open the mail in Exmail.",
    ),
    "no_sso": ErrorText(
        "这个邮箱不能一键登录",
        "请在企业微信的「邮件」中查看这封邮件。",
        "This mailbox offers no one-click sign-in",
        "Open the mail in WeCom's Mail instead.",
    ),
    "unavailable": ErrorText(
        "邮箱暂时打不开",
        "链接没有问题，只是企业邮箱或企业微信暂时连不上。请过几分钟再点一次。",
        "The mailbox cannot be opened right now",
        "The link is fine; Exmail or WeCom cannot be reached. Please try again later.",
    ),
}
_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _page(status: int, reason: str) -> web.Response:
    """The shared look of /me: what happened and what to do, Chinese first."""
    return error_page(status, _PAGES[reason], [_EXMAIL])


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
