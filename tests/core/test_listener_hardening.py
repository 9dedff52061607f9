"""A tenant never stalls on its directory, and a listen that ends at once is paced."""

from __future__ import annotations

from bridge import events
from bridge.config import TenantConfig
from bridge.store.base import Delivery, Store
from tests.core.test_listener import CLIENT_ID, Running, claim_all, running, until
from tests.exmail.test_hardening import WAF_PAGE, answering, token_server
from tests.plugins.sim import ExmailSim


async def _types(store: Store, found: list[Delivery]) -> set[str]:
    found.extend(await claim_all(store))
    return {d.event.type for d in found}


async def test_failing_directory_sync_does_not_block_mail(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """user/list failing after a Ver push: mail still flows, and the sync lands later."""
    exmail_sim.state.set_faults(http_5xx=1.0, endpoints=["user/list"])
    async with running(exmail_sim, store):
        ver = exmail_sim.state.add_user(CLIENT_ID, "carol@acme.com")
        exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")
        found: list[Delivery] = []

        async def mailed() -> bool:
            return events.MAIL_RECEIVED in await _types(store, found)

        await until(mailed)
        assert await store.get_version("acme") != ver  # not synced: the version waits
        exmail_sim.state.clear_faults()

        async def synced() -> bool:
            return events.DIRECTORY_CHANGED in await _types(store, found)

        await until(synced)  # retried on its own back-off
        assert await store.get_version("acme") == ver


async def test_pushes_after_a_failed_sync_in_one_response_are_committed(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """A mail streamed right behind a Ver whose sync fails is committed, not dropped."""
    exmail_sim.state.configure(None, framing="ndjson")
    exmail_sim.state.set_faults(http_5xx=1.0, endpoints=["user/list"], times=1)
    exmail_sim.state.add_user(CLIENT_ID, "carol@acme.com")
    mail_id = exmail_sim.state.send_mail(CLIENT_ID, to="bob@acme.com", sender="a@b.cn")
    async with running(exmail_sim, store):
        found: list[Delivery] = []

        async def both() -> bool:
            return {events.MAIL_RECEIVED, events.DIRECTORY_CHANGED} <= await _types(store, found)

        await until(both)
    mails = [d.event for d in found if d.event.type == events.MAIL_RECEIVED]
    assert [m.data["mail_id"] for m in mails] == [mail_id]


async def test_listen_goes_on_with_the_heard_version(exmail_sim: ExmailSim, store: Store) -> None:
    """After a failed sync the next listen sends the announced Ver, so it is not re-sent."""
    exmail_sim.state.set_faults(http_5xx=1.0, endpoints=["user/list"])
    ver = exmail_sim.state.add_user(CLIENT_ID, "carol@acme.com")
    async with running(exmail_sim, store) as run:
        await until(lambda: _polls(run, 3))
    vers = [str(v) for v in exmail_sim.state.stats(CLIENT_ID)["listen_vers"]]
    assert vers[0] == "0"
    assert set(vers[1:]) == {ver}


async def _polls(run: Running, n: int) -> bool:
    return run.listener.polls >= n


async def test_instant_empty_answers_are_paced(exmail_sim: ExmailSim, store: Store) -> None:
    """Listens answered at once with nothing new wait between polls, never a hot loop."""
    exmail_sim.state.configure(None, hold_s=0.0)
    settings = exmail_sim.exmail_settings(
        listen_hold_s=5.0, min_poll_interval_s=0.5, backoff_base_s=1.0, backoff_cap_s=8.0
    )
    async with running(exmail_sim, store, settings=settings) as run:
        await until(lambda: _polls(run, 6))
    paced = run.sleeps.asked[1:]  # the first sleep is the (zero) start-up delay
    assert len(paced) >= 5  # one wait after every hollow poll
    assert all(delay > 0 for delay in paced[:5])
    assert max(paced[:5]) > 0.5  # consecutive hollow polls climb the back-off ladder


async def test_held_polls_are_not_paced(exmail_sim: ExmailSim, store: Store) -> None:
    """A poll the upstream held for its hold time is healthy: the next starts at once."""
    settings = exmail_sim.exmail_settings(min_poll_interval_s=0.1)
    async with running(exmail_sim, store, settings=settings) as run:
        await until(lambda: _polls(run, 3))
    assert run.sleeps.asked[1:] == []


async def test_unread_memory_is_bounded_and_keeps_watched(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """The unread map forgets old mailboxes past its size, but never a watched one's baseline."""
    exmail_sim.state.configure(None, framing="ndjson")
    tenant = TenantConfig.model_validate(
        {
            **exmail_sim.tenant_config().model_dump(),
            "client_secret": "x",
            "watch": ["boss@acme.com"],
        }
    )
    exmail_sim.state.set_unread(CLIENT_ID, "boss@acme.com", 1)
    for i in range(30):
        exmail_sim.state.set_unread(CLIENT_ID, f"u{i}@acme.com", i + 1)
    async with running(exmail_sim, store, tenant=tenant, unread_memory=5) as run:
        await until(lambda: _queue_drained(exmail_sim))
        await until(lambda: _polls(run, 2))
        assert run.listener.remembered <= 6
        exmail_sim.state.set_unread(CLIENT_ID, "boss@acme.com", 4)
        found: list[Delivery] = []

        async def boss_event() -> bool:
            found.extend(await claim_all(store))
            return any(
                d.event.mailbox == "boss@acme.com" and d.event.data["unread_count"] == 4
                for d in found
            )

        await until(boss_event)
    boss = [d.event for d in found if d.event.data.get("unread_count") == 4]
    assert boss[-1].data["previous"] == 1


async def _queue_drained(sim: ExmailSim) -> bool:
    return int(sim.state.stats(CLIENT_ID)["queued"]) == 0


async def test_waf_page_at_the_token_endpoint_backs_off(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """A WAF's 403 page where the token should be backs the tenant off; it is not parked."""
    async with token_server(answering(403, WAF_PAGE, "text/html")) as url:
        settings = exmail_sim.exmail_settings(token_url=url, park_s=900)
        async with running(exmail_sim, store, settings=settings) as run:
            await until(lambda: _slept(run, 4))
    assert set(run.sleeps.states[1:4]) == {"backoff"}
    assert all(delay < 900 for delay in run.sleeps.asked[1:4])


async def test_retry_after_of_days_waits_an_hour_at_most(
    exmail_sim: ExmailSim, store: Store
) -> None:
    """A 429 asking for ten days parks the tenant's listen for one hour, not ten days."""
    exmail_sim.state.set_faults(http_429=1.0, retry_after_s=864000, endpoints=["listen"])
    async with running(exmail_sim, store) as run:
        await until(lambda: _slept(run, 2))
    assert run.sleeps.asked[1] == 3600


async def _slept(run: Running, n: int) -> bool:
    return len(run.sleeps.asked) >= n
