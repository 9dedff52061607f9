"""The new API's tokens, per app, outlive the client: a new one restores them from the store."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bridge.exmail_api.client import ApiClient
from bridge.store.sqlite import SqliteStore
from bridge.tokenstash import TokenStash
from bridge.tokenwarm import TokenWarmer
from tests.exmail_api.test_client import control, stats, tenant
from tests.plugins.sim import ExmailSim


async def test_each_apps_token_is_restored_by_a_new_client(
    exmail_sim: ExmailSim, tmp_path: Path
) -> None:
    """The mail and SSO tokens fetched by one client serve the next without a gettoken."""
    corp = {"corp_id": tenant().corp_id, "secrets": {"mail": "mail-s", "sso": "sso-s"}}
    await control(exmail_sim, "corps", corp)
    settings = exmail_sim.exmail_settings(api_url=exmail_sim.url)
    globex = tenant(sso_secret="sso-s")
    async with (
        SqliteStore(path=tmp_path / "b.db", dedupe_window_s=60) as store,
        aiohttp.ClientSession() as session,
    ):
        stash = TokenStash(store=store)
        first = ApiClient(
            session=session, settings=settings, base_url=settings.api_url, stash=stash
        )
        before = (await first.token(globex, "mail"), await first.token(globex, "sso"))
        again = ApiClient(
            session=session, settings=settings, base_url=settings.api_url, stash=stash
        )
        assert await TokenWarmer(stash=stash, holders={"api": again}).warm([globex]) == 2
        after = (await again.token(globex, "mail"), await again.token(globex, "sso"))
    assert after == before
    assert (await stats(exmail_sim))["token_requests"] == 2
