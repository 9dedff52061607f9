"""`exmail-bridge check --connect`: fetch a token per tenant (and per app) and report each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from bridge.config import Config, TenantConfig
from bridge.errors import UpstreamError
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.exmail_api.client import ApiClient

__all__ = ["check_tenants"]

Check = Callable[[TenantConfig], Awaitable[str]]
# How a protocol proves a credential, and the token endpoint named when that fails.
Checks = dict[str, tuple[Check, str]]


def _checks(config: Config, session: aiohttp.ClientSession) -> Checks:
    """How each protocol proves its credential: by protocol."""
    legacy = ExmailClient(session=session, settings=config.exmail)
    api = ApiClient(session=session, settings=config.exmail, base_url=config.exmail.api_url)
    wecom = ApiClient(
        session=session,
        settings=config.exmail,
        base_url=config.exmail.wecom_api_url,
        provider="wecom",
    )

    async def check_legacy(tenant: TenantConfig) -> str:
        await legacy.fetch_token(tenant)
        return "token fetched"

    async def check_api(tenant: TenantConfig) -> str:
        await api.token(tenant, "mail")
        if tenant.sso_secret is None:
            return "mail app token fetched"
        await api.token(tenant, "sso")
        return "mail and SSO app tokens fetched"

    async def check_wecom(tenant: TenantConfig) -> str:
        await wecom.token(tenant, "mail")
        return "token fetched"

    return {
        "legacy": (check_legacy, config.exmail.token_url),
        "api": (check_api, api.url_for("gettoken")),
        "wecom-mail": (check_wecom, wecom.url_for("gettoken")),
    }


async def check_tenants(config: Config) -> int:
    """Print `ok` or the error (with the URL that failed) per tenant; 1 when any failed."""
    failed = 0
    async with make_session(config.exmail, max_connections=8) as session:
        checks = _checks(config, session)
        for tenant in config.tenants:
            check, token_url = checks[tenant.protocol]
            try:
                done = await check(tenant)
            except UpstreamError as exc:
                failed += 1
                print(f"tenant {tenant.name}: FAILED: {token_url}: {exc}")
            else:
                print(f"tenant {tenant.name}: ok ({done})")
    print("all tenants ok" if not failed else f"{failed} tenant(s) failed")
    return 1 if failed else 0
