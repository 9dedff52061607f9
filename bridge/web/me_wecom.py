"""What the /me page asks WeCom: who an OAuth or QR-login code belongs to, and a member's
mailboxes. Both through the `[me]` sink's app (`sinks.wecom_api.WecomApi`).

`auth/getuserinfo` answers a corp member with `userid`; someone outside the corp (a
WeChat user, an external contact) with `openid` and perhaps `external_userid` instead.
Only members may sign in.
"""

from __future__ import annotations

from bridge.errors import SignInRefused, UpstreamError, UpstreamUnavailable
from bridge.logs import get_logger
from sinks.wecom_api import WecomApi

__all__ = ["member_emails", "member_for_code"]

log = get_logger(__name__)


async def member_for_code(api: WecomApi, code: str) -> str:
    """The userid of the member the code was issued to, or SignInRefused."""
    try:
        doc = await api.call("GET", "auth/getuserinfo", params={"code": code})
    except UpstreamUnavailable as exc:
        log.warning("me_signin_failed", reason="unavailable", errcode=exc.code)
        raise SignInRefused("unavailable") from exc
    except UpstreamError as exc:
        log.info("me_signin_failed", reason="code", errcode=exc.code)
        raise SignInRefused("code") from exc
    userid = doc.get("userid") or doc.get("UserId")
    if not isinstance(userid, str) or not userid:
        log.info("me_signin_failed", reason="outsider", external=bool(doc.get("external_userid")))
        raise SignInRefused("outsider")
    return userid


async def member_emails(api: WecomApi, userid: str) -> list[str]:
    """The member's company and personal mail addresses from `user/get` (empty on error)."""
    try:
        doc = await api.call("GET", "user/get", params={"userid": userid})
    except UpstreamError as exc:
        log.info("me_user_get_failed", errcode=exc.code)
        return []
    found = [doc.get("biz_mail"), doc.get("email")]
    return [str(v).lower() for v in found if isinstance(v, str) and v]
