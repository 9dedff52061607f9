"""The demo's new-API tenant: its corp on the simulator, and the mails sent to it.

An `api` tenant with a callback token is registered with the simulator's callback target
(the bridge's public URL), so its mail arrives as Tencent would send it: a sealed POST.
Without one, the tenant polls; its unread counts rise all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import aiohttp

from bridge.baselines import is_glob
from bridge.config import Config, TenantConfig

__all__ = ["API_MAILS", "api_tenant", "register_corp", "send_api_mails"]

API_MAILS = [
    ("ceo@initech.com", '"Finance"<finance@initech.com>', "预算批复：Q3 市场活动"),
    ("li.lei@initech.com", '"Customer"<buyer@client.cn>', "Re: 报价单 v2"),
]


def api_tenant(config: Config) -> TenantConfig | None:
    """The config's first `api` tenant, if any."""
    return next((t for t in config.tenants if t.protocol == "api"), None)


async def register_corp(sim_url: str, tenant: TenantConfig, public_url: str) -> None:
    """Tell the simulator the corp's secrets, directory and (callback mode) target."""
    body: dict[str, object] = {
        "corp_id": tenant.corp_id,
        "secrets": {"mail": tenant.corp_secret.get_secret_value()}
        | ({"sso": tenant.sso_secret.get_secret_value()} if tenant.sso_secret else {}),
    }
    if tenant.callback_token is not None and tenant.callback_aes_key is not None:
        body["callback"] = {
            "url": f"{public_url}/exmail/callback/{tenant.name}",
            "token": tenant.callback_token.get_secret_value(),
            "aes_key": tenant.callback_aes_key.get_secret_value(),
        }
    async with aiohttp.ClientSession() as http:
        await _post(http, f"{sim_url}/_sim/api/corps", body)
        plain = {w for w in tenant.watch if not is_glob(w)}
        for mailbox in sorted({m[0] for m in API_MAILS} | plain):
            user = {"tenant": tenant.corp_id, "userid": mailbox}
            await _post(http, f"{sim_url}/_sim/api/users", user)


async def send_api_mails(
    sim_url: str,
    tenant: TenantConfig,
    sent_at: dict[str, float],
    announce: Callable[[str, str], None],
    mails: Sequence[tuple[str, str, str]] = API_MAILS,
) -> None:
    """Send the demo's mails to the api tenant (the simulator calls the bridge back)."""
    async with aiohttp.ClientSession() as http:
        for mailbox, sender, subject in mails:
            sent_at[subject] = time.monotonic()
            announce(mailbox, subject)
            body = {"tenant": tenant.corp_id, "to": mailbox, "from": sender, "subject": subject}
            await _post(http, f"{sim_url}/_sim/mail", body)
            await asyncio.sleep(0.7)


async def _post(http: aiohttp.ClientSession, url: str, body: Mapping[str, object]) -> None:
    async with http.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"simulator refused {url.rsplit('/_sim/', 1)[-1]}: {resp.status}")
