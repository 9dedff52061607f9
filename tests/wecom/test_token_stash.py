"""The WeCom app's token outlives the sink: a restarted sink restores it from the store."""

from __future__ import annotations

from pathlib import Path

from bridge.store.sqlite import SqliteStore
from bridge.tokenstash import TokenStash
from sinks.wecom_api import WecomApi
from tests.plugins.wecom import WecomSim


async def test_a_restarted_api_uses_the_stored_token_and_the_refreshed_one(
    wecom_sim: WecomSim, tmp_path: Path
) -> None:
    """A new client starts with the stored token; one refreshed after 42001 is stored too."""
    config = wecom_sim.sink_config()
    async with SqliteStore(path=tmp_path / "b.db", dedupe_window_s=60) as store:
        stash = TokenStash(store=store)
        apis = [WecomApi(config=config, stash=stash) for _ in range(3)]
        try:
            await apis[0].start()
            first = await apis[0].token()
            await apis[1].start()
            assert await apis[1].token() == first
            wecom_sim.state.inject(42001)  # revokes the token: the call refreshes it once
            await apis[1].userid_by_email("bob@acme.com")
            refreshed = await apis[1].token()
            await apis[2].start()
            assert await apis[2].token() == refreshed != first
        finally:
            for api in apis:
                await api.aclose()
    assert wecom_sim.state.count("gettoken") == 2
