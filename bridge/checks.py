"""`exmail-bridge check --connect`: fetch a token per tenant and report each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.config import Config, TenantConfig
from bridge.errors import UpstreamError
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.exmail_api.client import ApiClient

__all__ = ["check_tenants"]

Fetch = Callable[[TenantConfig], Awaitable[object]]


async def check_tenants(config: Config) -> int:
    """Print `ok` or the error (with the URL that failed) per tenant; 1 when any failed."""
    failed = 0
    async with make_session(config.exmail, max_connections=8) as session:
        section = config.exmail
        api = ApiClient(session=session, settings=section, base_url=section.api_url)
        wecom = ApiClient(
            session=session, settings=section, base_url=section.wecom_api_url, provider="wecom"
        )
        # Each protocol has its own token endpoint: (how to fetch, the URL to name).
        fetchers: dict[str, tuple[Fetch, str]] = {
            "legacy": (
                ExmailClient(session=session, settings=section).fetch_token,
                section.token_url,
            ),
            "api": (api.token, f"{section.api_url}/cgi-bin/gettoken"),
            "wecom-mail": (wecom.token, f"{section.wecom_api_url}/cgi-bin/gettoken"),
        }
        for tenant in config.tenants:
            fetch, url = fetchers[tenant.protocol]
            try:
                await fetch(tenant)
            except UpstreamError as exc:
                failed += 1
                print(f"tenant {tenant.name}: FAILED: {url}: {exc}")
            else:
                print(f"tenant {tenant.name}: ok (token fetched)")
    print("all tenants ok" if not failed else f"{failed} tenant(s) failed")
    return 1 if failed else 0
