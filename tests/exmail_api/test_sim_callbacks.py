"""The simulator calls the receiver back like Tencent: sealed, retried, with faults."""

from __future__ import annotations

import socket
from typing import Any
from unittest.mock import patch

import aiohttp

from bridge import events
from bridge.errors import StoreError
from bridge.store.base import Store
from tests.exmail_api.helpers import AES_KEY, CORP_ID, TOKEN
from tests.exmail_api.receiver import Receiver, serving
from tests.plugins.sim import ExmailSim


async def _post(sim: ExmailSim, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{sim.url}{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def _aim(sim: ExmailSim, url: str, **settings: Any) -> None:
    """Point the simulated corp's callbacks at `url`; fast retries for tests."""
    callback = {"url": url, "token": TOKEN, "aes_key": AES_KEY}
    await _post(sim, "/_sim/api/corps", {"corp_id": CORP_ID, "callback": callback})
    await _post(sim, "/_sim/api/faults", {"settings": {"callback_retry_s": 0.05, **settings}})


async def _mail(sim: ExmailSim, **extra: Any) -> dict[str, Any]:
    body = {"tenant": CORP_ID, "to": "boss@globex.com", "from": '"A" <a@b.cn>', "wait": True}
    return await _post(sim, "/_sim/mail", {**body, "subject": "hi", **extra})


def _statuses(answer: dict[str, Any]) -> list[int]:
    return [d["status"] for d in answer["deliveries"]]


async def test_sim_mail_reaches_the_receiver(exmail_sim: ExmailSim, store: Store) -> None:
    """/_sim/mail for an api corp POSTs a sealed Mail callback that commits one event."""
    async with serving(store) as rx:
        await _aim(exmail_sim, f"{rx.url}/exmail/callback/globex")
        answer = await _mail(exmail_sim, unread=True)
        assert _statuses(answer) == [200, 200]
        committed = await rx.committed()
    assert [e.type for e in committed] == [events.MAIL_RECEIVED, events.MAIL_UNREAD]
    assert committed[0].data["mail_id"] == answer["mail_id"]
    assert committed[0].data["unread_count"] == committed[1].data["unread_count"] == 1


async def test_sim_unread_reaches_the_receiver(exmail_sim: ExmailSim, rx: Receiver) -> None:
    """/_sim/api/unread sets a count and calls back with an UnRead message."""
    await _aim(exmail_sim, f"{rx.url}/exmail/callback/globex")
    body = {"tenant": CORP_ID, "mailbox": "boss@globex.com", "count": 7, "wait": True}
    assert _statuses(await _post(exmail_sim, "/_sim/api/unread", body)) == [200]
    [event] = await rx.committed()
    assert (event.type, event.data["unread_count"]) == (events.MAIL_UNREAD, 7)


async def _faulty(sim: ExmailSim, rx: Receiver, fault: str) -> dict[str, Any]:
    await _aim(sim, f"{rx.url}/exmail/callback/globex")
    await _post(sim, "/_sim/api/faults", {"callbacks": {fault: 1}})
    return await _mail(sim)


async def test_bad_signature_is_refused_on_every_try(exmail_sim: ExmailSim, rx: Receiver) -> None:
    """The bad-signature fault: three tries, each 401, nothing committed."""
    assert _statuses(await _faulty(exmail_sim, rx, "bad_signature")) == [401, 401, 401]
    assert await rx.committed() == []


async def test_wrong_corp_and_stale_are_refused(exmail_sim: ExmailSim, rx: Receiver) -> None:
    """The wrong-CorpID and stale-timestamp faults are refused with 403, nothing committed."""
    for fault in ("wrong_corp", "stale_timestamp"):
        assert _statuses(await _faulty(exmail_sim, rx, fault)) == [403, 403, 403]
    assert await rx.committed() == []


async def test_duplicate_delivery_is_one_event(exmail_sim: ExmailSim, rx: Receiver) -> None:
    """The duplicate fault sends the same request twice: 200, then 403 replay; one event."""
    assert _statuses(await _faulty(exmail_sim, rx, "duplicate"))[:2] == [200, 403]
    assert len(await rx.committed()) == 1


async def test_retries_until_the_store_is_back(exmail_sim: ExmailSim, rx: Receiver) -> None:
    """503 while the store is down, then the retry commits: like WeCom, up to 3 tries."""
    await _aim(exmail_sim, f"{rx.url}/exmail/callback/globex", callback_retry_s=0.3)
    failing = StoreError("down", backend=rx.store.backend, op="commit")
    real = rx.store.commit
    calls = 0

    async def down_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise failing
        return await real(*args, **kwargs)

    with patch.object(rx.store, "commit", side_effect=down_once):
        answer = await _mail(exmail_sim)
    assert _statuses(answer) == [503, 200]
    assert len(await rx.committed()) == 1


async def test_callback_while_the_bridge_is_down(exmail_sim: ExmailSim) -> None:
    """Nobody listening: three tries, each a connection error, recorded in the stats."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await _aim(exmail_sim, f"http://127.0.0.1:{port}/exmail/callback/globex")
    answer = await _mail(exmail_sim)
    assert [(d["attempt"], d["status"]) for d in answer["deliveries"]] == [(1, 0), (2, 0), (3, 0)]
    assert all(d["error"] for d in answer["deliveries"])


async def test_legacy_mail_still_goes_to_the_legacy_simulator(exmail_sim: ExmailSim) -> None:
    """/_sim/mail for a legacy client_id is untouched by the new API's routing."""
    exmail_sim.state.token_requests["admin@acme.com"] += 1  # known, as after a token
    answer = await _post(exmail_sim, "/_sim/mail", {"tenant": "admin@acme.com", "to": "b@acme.com"})
    assert "deliveries" not in answer
    assert exmail_sim.state.tenant("admin@acme.com").unread["b@acme.com"] == 1
