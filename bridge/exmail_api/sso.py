"""Click-through for `api` tenants: `service/get_login_url` with the SSO app's token."""

from __future__ import annotations

from urllib.parse import urlsplit

from bridge.config import TenantConfig
from bridge.errors import UpstreamProtocolError
from bridge.exmail_api.client import ApiClient

__all__ = ["ApiLogin"]


class ApiLogin:
    """Asks the new API for a single-use login URL (token of `sso_secret`, else `corp_secret`)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def login_url(self, tenant: TenantConfig, mailbox: str, mail_id: str = "") -> str:
        """A fresh `login_url` for `mailbox` (a secret: never cached, never logged). The new
        API's login opens the mailbox, not one mail: `mail_id` is not used."""
        doc = await self._client.call(
            tenant, "GET", "service/get_login_url", app="sso", params={"userid": mailbox}
        )
        url = doc.get("login_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in {"http", "https"}:
            raise UpstreamProtocolError(
                "no usable login_url", endpoint="service/get_login_url", code="shape"
            )
        return url
