"""Delivery to subscriptions over the real API, on both stores: routing at commit, secret
rotation with grace, the test ping, attempts, resend, recover, and auto-disable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bridge.delivery.subscription_model import rfc3339
from tests.e2e.receiver import WebhookReceiver
from tests.web.conftest import ApiHarness, whsec


async def test_commit_routes_to_matching_subscriptions_only(api: ApiHarness) -> None:
    """Event type, tenant and mailbox filters decide which subscriptions get an event."""
    mail = await api.create(event_types=["exmail.mail.*"], tenants=["acme"])
    other = await api.create(tenants=["beta"], url=api.receiver.url("/beta"))
    event = api.event(1)
    await api.commit(event, api.event(2, kind="exmail.directory.changed"))
    await api.until(lambda: event.id in api.receiver.delivered_ids("/hook"), "the delivery")
    await asyncio.sleep(0.3)
    assert [h.webhook_id for h in api.receiver.hits] == [event.id]
    assert api.subs.registry.sinks_for(api.event(3, tenant="beta")) == (other["id"],)
    assert api.subs.registry.sinks_for(event) == (mail["id"],)


async def test_rotation_signs_with_both_secrets_during_the_grace(api: ApiHarness) -> None:
    """During the grace old and new secrets both verify; after it only the new one does."""
    created = await api.create(url=api.receiver.url("/old"))
    new_secret = whsec()
    new_only = WebhookReceiver(secret=new_secret)
    await new_only.start()
    try:
        sub = f"/v1/subscriptions/{created['id']}"
        status, rotated, _ = await api.call(
            "POST", f"{sub}/secret/rotate", {"grace_s": 2, "secret": new_secret}
        )
        assert status == 200
        assert rotated["secret"] == new_secret
        assert rotated["old_secret_expires_at"].endswith("Z")
        during = api.event(1)
        await api.commit(during)
        await api.until(lambda: during.id in api.receiver.delivered_ids(), "old-secret receiver")
        await api.call("PATCH", sub, {"url": new_only.url("/new")})
        await api.until(
            _url_is(api, created["id"], "/new"),
            "the reload",
        )
        during2 = api.event(2)
        await api.commit(during2)
        await api.until(lambda: during2.id in new_only.delivered_ids(), "new-secret receiver")
        await asyncio.sleep(2.1)  # the grace ends
        assert new_only.unverified == 0
        await api.call("PATCH", sub, {"url": api.receiver.url("/old")})
        await api.until(
            _url_is(api, created["id"], "/old"),
            "the reload",
        )
        after = api.event(3)
        await api.commit(after)
        await api.until(lambda: api.receiver.unverified >= 1, "the old secret refused")
        api.receiver.unverified = 0  # expected: the old-secret receiver must refuse now
        await api.call("PATCH", sub, {"url": new_only.url("/new")})
        await api.until(
            _url_is(api, created["id"], "/new"),
            "the reload",
        )
        await api.call("POST", f"{sub}/resend/{after.id}")
        await api.until(lambda: after.id in new_only.delivered_ids(), "the resend verified")
    finally:
        await new_only.stop()
    assert new_only.unverified == 0


async def test_rotate_without_grace_drops_the_old_secret(api: ApiHarness) -> None:
    """grace_s 0: the old secret stops signing at once; the answer says so with null."""
    created = await api.create()
    status, rotated, _ = await api.call(
        "POST", f"/v1/subscriptions/{created['id']}/secret/rotate", {"grace_s": 0}
    )
    assert status == 200
    assert rotated["old_secret_expires_at"] is None
    stored = await api.store.get_subscription(created["id"])
    assert stored is not None
    assert stored.signing_secrets(time.time()) == (rotated["secret"],)


async def test_test_sends_a_signed_ping_and_reports_the_answer(api: ApiHarness) -> None:
    """POST /test answers the receiver's status and timing; the ping verifies."""
    created = await api.create()
    api.receiver.answer(202)
    status, result, _ = await api.call("POST", f"/v1/subscriptions/{created['id']}/test")
    assert status == 200
    assert (result["ok"], result["status_code"], result["error"]) == (True, 202, "")
    assert result["duration_ms"] >= 0
    [hit] = api.receiver.hits
    assert hit.event["type"] == "exmail.ping"
    assert hit.webhook_id == result["event_id"]
    await api.receiver.stop()
    status, result, _ = await api.call("POST", f"/v1/subscriptions/{created['id']}/test")
    assert (status, result["ok"], result["status_code"]) == (200, False, None)
    assert result["error"].startswith("connection failed")
    await api.receiver.start()


async def test_attempts_list_filters_and_pages(api: ApiHarness) -> None:
    """Attempts show time, status code, duration and error; status/since/cursor filter."""
    created = await api.create()
    path = f"/v1/subscriptions/{created['id']}/attempts"
    api.receiver.answer(500)
    failing = api.event(1)
    await api.commit(failing)
    await api.until(lambda: len(api.receiver.attempts(failing.id)) == 3, "three attempts")
    api.receiver.answer(204)
    ok = api.event(2)
    await api.commit(ok)
    await api.until(lambda: ok.id in api.receiver.delivered_ids(), "the delivery")
    await asyncio.sleep(0.2)
    status, page, _ = await api.call("GET", f"{path}?status=failed")
    assert status == 200
    assert [(a["status_code"], a["error"]) for a in page["data"]] == [(500, "HTTP 500")] * 3
    status, page, _ = await api.call("GET", f"{path}?status=succeeded")
    assert [a["event_id"] for a in page["data"]] == [ok.id]
    first_at = page["data"][0]["at"]
    status, page, _ = await api.call("GET", f"{path}?since={first_at}")
    assert [a["event_id"] for a in page["data"]] == [ok.id]
    status, page, _ = await api.call("GET", f"{path}?limit=2")
    assert len(page["data"]) == 2
    status, rest, _ = await api.call("GET", f"{path}?limit=2&cursor={page['next_cursor']}")
    assert len(rest["data"]) == 2
    assert rest["next_cursor"] is None
    status, problem, _ = await api.call("GET", f"{path}?since=yesterday")
    assert (status, problem["detail"]) == (400, "since: must be an RFC 3339 time")


async def test_resend_delivers_one_event_again_under_its_id(api: ApiHarness) -> None:
    """POST /resend/{event_id} answers 202 and the receiver gets the same webhook-id."""
    created = await api.create()
    event = api.event(1)
    await api.commit(event)
    await api.until(lambda: event.id in api.receiver.delivered_ids(), "the delivery")
    status, queued, _ = await api.call(
        "POST", f"/v1/subscriptions/{created['id']}/resend/{event.id}"
    )
    assert (status, queued) == (202, {"event_id": event.id, "status": "queued"})
    await api.until(lambda: api.receiver.delivered_ids()[event.id] == 2, "the resend")
    status, _, _ = await api.call("POST", f"/v1/subscriptions/{created['id']}/resend/nope")
    assert status == 404


async def test_recover_redelivers_what_a_dead_receiver_missed(api: ApiHarness) -> None:
    """Events dead-lettered while the receiver was down come back, same ids, on recover."""
    created = await api.create()
    started = time.time()
    await api.receiver.stop()
    missed = [api.event(n) for n in range(3)]
    await api.commit(*missed)
    await api.until(_dead(api, created["id"], 3), "three dead letters")
    await api.receiver.start()
    status, job, _ = await api.call(
        "POST", f"/v1/subscriptions/{created['id']}/recover", {"since": rfc3339(started - 1)}
    )
    assert status == 202
    assert job["id"].startswith("job_")
    assert job["status"] == "running"
    await api.until(
        lambda: set(api.receiver.delivered_ids()) == {e.id for e in missed}, "the recovery"
    )
    assert await api.store.dead_count(created["id"]) == 0


def _dead(api: ApiHarness, sink: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await api.store.dead_count(sink) == n

    return check


async def test_redirects_are_not_followed(api: ApiHarness) -> None:
    """A receiver answering 307 is not followed: one request, a failed attempt, no retry."""
    created = await api.create()
    api.receiver.answer(307)
    event = api.event(1)
    await api.commit(event)
    await api.until(_dead(api, created["id"], 1), "the dead letter")
    assert [h.status for h in api.receiver.attempts(event.id)] == [307]
    _, page, _ = await api.call("GET", f"/v1/subscriptions/{created['id']}/attempts")
    assert [(a["status"], a["status_code"]) for a in page["data"]] == [("failed", 307)]


def _url_is(api: ApiHarness, sub_id: str, suffix: str) -> Callable[[], bool]:
    def check() -> bool:
        sub = api.subs.registry.get(sub_id)
        return sub is not None and sub.url.endswith(suffix)

    return check
