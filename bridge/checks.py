"""`exmail-bridge check --connect`: fetch a token per tenant and report each."""

from __future__ import annotations

from bridge.config import Config
from bridge.errors import UpstreamError
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session

__all__ = ["check_tenants"]


async def check_tenants(config: Config) -> int:
    """Print `ok` or the error (with the URL that failed) per tenant; 1 when any failed."""
    failed = 0
    async with make_session(config.exmail, max_connections=8) as session:
        client = ExmailClient(session=session, settings=config.exmail)
        for tenant in config.tenants:
            try:
                await client.fetch_token(tenant)
            except UpstreamError as exc:
                failed += 1
                print(f"tenant {tenant.name}: FAILED: {config.exmail.token_url}: {exc}")
            else:
                print(f"tenant {tenant.name}: ok (token fetched)")
    print("all tenants ok" if not failed else f"{failed} tenant(s) failed")
    return 1 if failed else 0
