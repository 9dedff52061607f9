"""The real bridge process with a legacy, an `api` and a `wecom-mail` tenant: mail that
arrives while no bridge runs is announced exactly once after `run` comes back."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

from bridge import events
from bridge.simulator.exmail_newapi_http import NEWAPI
from bridge.simulator.exmail_newapi_state import NewApiState
from tests.e2e.process import to_toml
from tests.e2e.receiver import Hit
from tests.plugins.e2e import BOTH_STORES, CLIENT_ID, GRACE_S, Harness

GLOBEX, INITECH = "wwglobex0000000001", "wwinitech000000001"
LEGACY_BOSS, CAROL = "boss@acme.com", "carol@initech.com"
BOSS, ANN, EVE = "boss@globex.com", "ann@globex.com", "eve@globex.com"
TENANTS = ("acme", "globex", "initech")
EXIT_S = GRACE_S + 4.0


def _newapi(e2e: Harness) -> NewApiState:
    return e2e.sim.app[NEWAPI]


def _world(e2e: Harness) -> None:
    """Two new-API corps with their directories and counts; the legacy boss's count."""
    api = _newapi(e2e)
    for corp_id, boxes in ((GLOBEX, [BOSS, ANN, EVE]), (INITECH, [CAROL])):
        corp = api.corp(corp_id)
        assert corp is not None
        corp.users.update({box: {"name": box.split("@")[0]} for box in boxes})
    api.arrive(GLOBEX, ANN)
    e2e.sim.state.add_user(CLIENT_ID, LEGACY_BOSS)
    e2e.sim.state.tenant(CLIENT_ID).unread[LEGACY_BOSS] = 1


def _config(e2e: Harness) -> Path:
    path = e2e.write_config(
        sinks=[e2e.webhook_sink()],
        exmail={"api_url": e2e.sim.url, "wecom_api_url": e2e.sim.url, "poll_interval_s": 0.3},
    )
    tenants: list[dict[str, Any]] = [
        {"name": "globex", "protocol": "api", "corp_id": GLOBEX, "corp_secret": "g-secret"},
        {"name": "initech", "protocol": "wecom-mail", "corp_id": INITECH, "corp_secret": "i-s"},
    ]
    tenants[0]["watch"], tenants[1]["watch"] = ["*@globex.com"], [CAROL]
    text = path.read_text(encoding="utf-8").replace(
        'name = "acme"\n', f'name = "acme"\nwatch = ["{LEGACY_BOSS}"]\n'
    )
    path.write_text(text + "\n" + to_toml({"tenants": tenants}), encoding="utf-8")
    return path


async def _baselines(e2e: Harness) -> dict[str, dict[str, int]]:
    async with e2e.store.open() as store:
        return {tenant: await store.get_baselines(tenant) for tenant in TENANTS}


def _settled(want: dict[str, dict[str, int]]) -> Any:
    async def check(e2e: Harness) -> bool:
        return await _baselines(e2e) == want

    return check


def _rises(e2e: Harness) -> list[Hit]:
    return [h for h in e2e.receiver.delivered() if h.event["type"] == events.MAIL_UNREAD]


async def _restart(e2e: Harness, config: Path, *, kill: bool) -> None:
    if kill:
        e2e.bridge.kill()
    else:
        e2e.bridge.signal(signal.SIGTERM)
        assert await e2e.bridge.wait_exit(EXIT_S) == 0


@BOTH_STORES
async def test_mail_while_down_is_announced_once_per_mailbox(e2e: Harness) -> None:
    """Mail while stopped is announced once per watched mailbox, and never again after."""
    _world(e2e)
    config = _config(e2e)
    first = {"acme": {LEGACY_BOSS: 1}, "globex": {ANN: 1, BOSS: 0, EVE: 0}, "initech": {CAROL: 0}}
    await e2e.start_bridge(config)
    await e2e.until(lambda: _settled(first)(e2e), "the first baselines")
    await _restart(e2e, config, kill=False)
    for box in (BOSS, BOSS, ANN):
        _newapi(e2e).arrive(GLOBEX, box)
    _newapi(e2e).arrive(INITECH, CAROL)
    e2e.sim.state.tenant(CLIENT_ID).unread[LEGACY_BOSS] = 4  # the pushes were lost
    after = {"acme": {LEGACY_BOSS: 4}, "globex": {ANN: 2, BOSS: 2, EVE: 0}, "initech": {CAROL: 1}}
    await e2e.start_bridge(config)
    await e2e.until(lambda: _settled(after)(e2e), "the reconciled baselines")
    await e2e.until(lambda: len(_rises(e2e)) >= 4, "four unread events")
    await _restart(e2e, config, kill=True)
    await e2e.start_bridge(config)
    polls = await e2e.metric("exmail_bridge_unread_polls_total")
    await e2e.until(e2e.metric_reaches("exmail_bridge_unread_polls_total", polls + 9), "3 rounds")
    got = Counter(
        (
            h.event["data"]["tenant"],
            h.event["subject"],
            h.event["data"]["previous"],
            h.event["data"]["unread_count"],
            h.event["data"]["reason"],
        )
        for h in _rises(e2e)
    )
    assert got == Counter(
        {
            ("acme", LEGACY_BOSS, 1, 4, "reconcile"): 1,
            ("globex", BOSS, 0, 2, "reconcile"): 1,
            ("globex", ANN, 1, 2, "reconcile"): 1,
            ("initech", CAROL, 0, 1, "reconcile"): 1,
        }
    )
    assert set(e2e.receiver.delivered_ids().values()) == {1}


async def test_wecom_mail_rise_reaches_the_webhook(e2e: Harness) -> None:
    """A wecom-mail member's new mail (counted by qyapi) arrives as exmail.mail.unread."""
    _world(e2e)
    await e2e.start_bridge(_config(e2e))
    await e2e.until(lambda: _settled_for(e2e, "initech", {CAROL: 0}), "the first poll")
    _newapi(e2e).arrive(INITECH, CAROL)
    await e2e.until(lambda: len(_rises(e2e)) == 1, "the unread event")
    [hit] = _rises(e2e)
    assert hit.event["source"] == "exmail://initech"
    assert hit.event["data"] | {"mailbox": CAROL} == {
        "tenant": "initech",
        "mailbox": CAROL,
        "unread_count": 1,
        "previous": 0,
        "reason": "poll",
    }


async def _settled_for(e2e: Harness, tenant: str, want: dict[str, int]) -> bool:
    return (await _baselines(e2e))[tenant] == want
