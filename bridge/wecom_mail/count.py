"""A watched mailbox's unread count for a `wecom-mail` tenant.

`POST cgi-bin/exmail/mail/get_newcount {"userid"}` takes the member's WeCom userid, not the
mailbox: the mailbox is mapped through `user/get_userid_by_email` by the WeCom sink's
member directory (hits and misses cached, one lookup per mailbox in flight), because
WeCom blocks that API for a day when too many lookups fail.
"""

from __future__ import annotations

from bridge.config import TenantConfig
from bridge.errors import UpstreamRejected
from bridge.exmail_api.directory import ApiCaller
from bridge.exmail_api.newcount import parse_count
from sinks.wecom_members import MemberDirectory

__all__ = ["QyapiEmailLookup", "WecomMailCount"]

PROVIDER = "wecom"
ENDPOINT = "exmail/mail/get_newcount"
LOOKUP = "user/get_userid_by_email"
# no such member: the mailbox is unknown to this corp (not worth retrying)
MISSING_MEMBER_CODES = frozenset({"46004", "60111", "40003"})


class QyapiEmailLookup:
    """`EmailLookup` over the tenant's own qyapi token (the mail app's secret)."""

    def __init__(self, *, client: ApiCaller, tenant: TenantConfig) -> None:
        self._client = client
        self._tenant = tenant

    async def userid_by_email(self, email: str) -> str | None:
        """The member's userid, or None when WeCom knows no such member."""
        body = {"email": email, "email_type": 1}
        try:
            doc = await self._client.call(self._tenant, "POST", LOOKUP, body=body)
        except UpstreamRejected as exc:
            if exc.code in MISSING_MEMBER_CODES:
                return None
            raise
        userid = doc.get("userid")
        return userid if isinstance(userid, str) and userid else None


class WecomMailCount:
    """`CountReader` for one `wecom-mail` tenant."""

    def __init__(
        self, *, client: ApiCaller, tenant: TenantConfig, members: MemberDirectory
    ) -> None:
        self._client = client
        self._tenant = tenant
        self._members = members

    async def unread_count(self, mailbox: str) -> int:
        """The member's unread count; UpstreamRejected when no member owns `mailbox`."""
        userid = await self._members.userid_for(mailbox)
        if userid is None:
            raise UpstreamRejected(
                "no WeCom member has this mailbox", provider=PROVIDER, endpoint=LOOKUP
            )
        doc = await self._client.call(self._tenant, "POST", ENDPOINT, body={"userid": userid})
        return parse_count(doc, provider=PROVIDER, endpoint=ENDPOINT)
