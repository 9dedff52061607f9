"""Login providers of the click-through: how a tenant's protocol opens a mailbox in one click.

The click-through verifies the link (and the clicker); a provider then answers the URL to
redirect to. Each protocol with single sign-on has one provider: `legacy` asks the old
OpenAPI for an auth key, `api` asks the new API for a login URL (bridge/exmail_api/sso.py).
`wecom-mail` has none: WeCom-native mail offers no SSO, so its cards carry no button.
The URL a provider answers is a single-use secret: fetched per click, never cached, never
logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from bridge.config import TenantConfig
from bridge.events import Event

__all__ = ["AuthKeys", "LegacyLogin", "LoginProvider", "only_with_sso"]


class LoginProvider(Protocol):
    """Answers a fresh one-click login URL for a mailbox."""

    async def login_url(self, tenant: TenantConfig, mailbox: str, mail_id: str = "") -> str:
        """A single-use URL that opens `mailbox` (at `mail_id` when the protocol can; a
        secret: never log it)."""


class AuthKeys(Protocol):
    """Exmail's legacy SSO: what `bridge.exmail.client.ExmailClient` provides."""

    async def authkey(self, tenant: TenantConfig, mailbox: str) -> str:
        """A fresh one-time login key for `mailbox` (a secret)."""

    def sso_url(self, tenant: TenantConfig, mailbox: str, auth_key: str, mail_id: str = "") -> str:
        """The one-click login URL carrying `auth_key`, opening `mail_id` when given."""


class LegacyLogin:
    """`mail/authkey`, then Exmail's `bizopenssologin` URL carrying the key."""

    def __init__(self, authkeys: AuthKeys) -> None:
        self._authkeys = authkeys

    async def login_url(self, tenant: TenantConfig, mailbox: str, mail_id: str = "") -> str:
        """The legacy SSO URL with a fresh auth key, opening `mail_id`."""
        key = await self._authkeys.authkey(tenant, mailbox)
        return self._authkeys.sso_url(tenant, mailbox, key, mail_id)


def only_with_sso(
    link_for: Callable[[Event], str], tenants: Iterable[TenantConfig]
) -> Callable[[Event], str | None]:
    """`link_for`, answering None for tenants that cannot open mail in one click: a card
    then carries no button and says why (sinks/wecom_notice.py)."""
    no_sso = frozenset(t.name for t in tenants if not t.click_through)
    return lambda event: None if event.tenant in no_sso else link_for(event)
