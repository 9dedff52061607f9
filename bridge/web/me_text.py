"""The page's words in Chinese (the default) and English, and the choice between them.

English is chosen when the browser's `Accept-Language` prefers an `en` tag over any `zh`
one; everything else reads Chinese. Error pages speak both languages at once, because
the person reading one may have opened it from anywhere.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ERRORS", "TEXT", "Lang", "choose_lang"]

Lang = Literal["zh", "en"]

TEXT: dict[Lang, dict[str, str]] = {
    "zh": {
        "title": "我的邮件通知",
        "signed_in_as": "已登录",
        "sign_out": "退出",
        "mailboxes": "我的邮箱",
        "no_mailboxes": "还没有找到属于您的邮箱。",
        "recent": "最近的通知",
        "no_recent": "还没有通知。",
        "delivered": "已送达",
        "held": "暂存",
        "muted": "已屏蔽",
        "preferences": "通知设置",
        "mute_until": "暂停通知直到",
        "mute_hint": "留空表示不暂停。期间的邮件会在结束时合成一张卡片送达。",
        "quiet_hours": "免打扰时段",
        "quiet_hint": "期间的邮件会在时段结束时合成一张卡片送达。两项都留空表示不设。",
        "from": "从",
        "to": "到",
        "timezone": "时区",
        "vip": "重要发件人",
        "vip_hint": "每行一个地址，可用 * 通配（如 *@acme.com）。这些邮件总会立即通知。",
        "muted_senders": "屏蔽的发件人",
        "muted_keywords": "屏蔽的主题关键词",
        "muted_hint": "每行一个。匹配的邮件不会通知，但会在上面的列表中显示为“已屏蔽”。",
        "digest": "汇总",
        "digest_off": "不汇总，逐封通知",
        "digest_hourly": "每小时汇总一次",
        "digest_daily": "每天 09:00 汇总一次",
        "save": "保存",
        "saved": "已保存。",
        "error_prefix": "没有保存：",
        "open_in_wecom": "在企业微信中打开",
        "scan_qr": "用企业微信扫码登录",
        "sign_in": "登录",
    },
    "en": {
        "title": "My mail notifications",
        "signed_in_as": "Signed in as",
        "sign_out": "Sign out",
        "mailboxes": "My mailboxes",
        "no_mailboxes": "No mailbox of yours was found yet.",
        "recent": "Recent notifications",
        "no_recent": "No notifications yet.",
        "delivered": "delivered",
        "held": "held",
        "muted": "muted",
        "preferences": "Notification settings",
        "mute_until": "Pause notifications until",
        "mute_hint": "Empty: no pause. Mails meanwhile arrive as one card when it ends.",
        "quiet_hours": "Quiet hours",
        "quiet_hint": "Mails meanwhile arrive as one card when they end. Both empty: none.",
        "from": "from",
        "to": "to",
        "timezone": "Time zone",
        "vip": "VIP senders",
        "vip_hint": "One address per line, * allowed (e.g. *@acme.com). Always notify at once.",
        "muted_senders": "Muted senders",
        "muted_keywords": "Muted subject keywords",
        "muted_hint": "One per line. Matching mails never notify; the list above shows them.",
        "digest": "Digest",
        "digest_off": "Off: one card per mail",
        "digest_hourly": "Hourly",
        "digest_daily": "Daily at 09:00",
        "save": "Save",
        "saved": "Saved.",
        "error_prefix": "Not saved: ",
        "open_in_wecom": "Open in WeCom",
        "scan_qr": "Sign in with the WeCom QR code",
        "sign_in": "Sign in",
    },
}

# reason -> (heading zh, what to do zh, heading en, what to do en)
ERRORS: dict[str, tuple[str, str, str, str]] = {
    "state": (
        "登录链接已失效",
        "登录请求已过期或已被使用过。请重新登录。",
        "This sign-in link no longer works",
        "The sign-in request expired or was already used. Please sign in again.",
    ),
    "code": (
        "企业微信没有确认您的身份",
        "请重新登录；如果一直失败，请联系管理员。",
        "WeCom did not confirm who you are",
        "Please sign in again; if it keeps failing, ask your administrator.",
    ),
    "outsider": (
        "只有本企业的成员可以登录",
        "请用本企业的企业微信账号登录。外部联系人和微信用户不能使用这个页面。",
        "Only members of this company can sign in",
        "Sign in with your company's WeCom account. External contacts cannot use this page.",
    ),
    "unavailable": (
        "企业微信暂时无法连接",
        "请稍后再试。",
        "WeCom cannot be reached right now",
        "Please try again in a few minutes.",
    ),
    "signed_out": (
        "您已退出",
        "需要时可以再次登录。",
        "You have signed out",
        "Sign in again whenever you like.",
    ),
    "csrf": (
        "这个表单已失效",
        "请刷新页面后再保存一次。",
        "This form has expired",
        "Reload the page and save again.",
    ),
}


def choose_lang(accept_language: str) -> Lang:
    """`en` when the browser prefers English to Chinese, else `zh`."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality <= 0:
            continue  # q=0 means "not this one"
        ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"
