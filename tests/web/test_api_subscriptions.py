"""The subscription resources over HTTP, on both stores: create, list, get, change, delete,
disable and enable."""

from __future__ import annotations

from bridge.delivery.subscription_model import parse_rfc3339
from tests.web.conftest import ApiHarness


async def test_create_answers_201_with_the_secret_once(api: ApiHarness) -> None:
    """POST answers the subscription with its whsec_ secret; GET never shows the secret."""
    created = await api.create(
        event_types=["exmail.mail.*"],
        tenants=["acme"],
        mailboxes=["*@acme.com"],
        description="OA",
        metadata={"system": "oa"},
        secret=None,
    )
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["exmail.mail.*"]
    assert created["metadata"] == {"system": "oa"}
    assert created["created_at"].endswith("Z")
    assert parse_rfc3339(created["created_at"]) > 0
    status, got, _ = await api.call("GET", f"/v1/subscriptions/{created['id']}")
    assert status == 200
    assert "secret" not in got
    assert got["url"] == created["url"]


async def test_create_keeps_a_given_secret(api: ApiHarness) -> None:
    """A secret given at creation is the one that signs (the receiver verifies with it)."""
    created = await api.create()
    assert created["secret"] == api.secret
    await api.commit(api.event(1))
    await api.until(lambda: len(api.receiver.delivered()) == 1, "the delivery")


async def test_list_pages_with_a_cursor(api: ApiHarness) -> None:
    """GET /v1/subscriptions pages by `limit` and `next_cursor` until null."""
    made = [(await api.create(description=str(n)))["id"] for n in range(5)]
    seen: list[str] = []
    path = "/v1/subscriptions?limit=2"
    while True:
        status, page, _ = await api.call("GET", path)
        assert status == 200
        assert len(page["data"]) <= 2
        seen += [s["id"] for s in page["data"]]
        if page["next_cursor"] is None:
            break
        path = f"/v1/subscriptions?limit=2&cursor={page['next_cursor']}"
    assert seen == made


async def test_patch_changes_only_the_given_fields(api: ApiHarness) -> None:
    """PATCH replaces the fields it carries and keeps the others."""
    created = await api.create(description="before", event_types=["exmail.mail.received"])
    status, changed, _ = await api.call(
        "PATCH", f"/v1/subscriptions/{created['id']}", {"description": "after"}
    )
    assert status == 200
    assert changed["description"] == "after"
    assert changed["event_types"] == ["exmail.mail.received"]
    assert changed["updated_at"] >= created["updated_at"]


async def test_patched_filters_route_the_next_commit(api: ApiHarness) -> None:
    """A filter changed through PATCH decides where the next commit goes."""
    created = await api.create(event_types=["exmail.mail.unread"])
    await api.commit(api.event(1))
    await api.call(
        "PATCH", f"/v1/subscriptions/{created['id']}", {"event_types": ["exmail.mail.*"]}
    )
    await api.until(
        lambda: api.subs.registry.sinks_for(api.event(0)) == (created["id"],), "the reload"
    )
    second = api.event(2)
    await api.commit(second)
    await api.until(lambda: second.id in api.receiver.delivered_ids(), "the delivery")
    assert len(api.receiver.hits) == 1


async def test_delete_answers_204_and_drops_pending_deliveries(api: ApiHarness) -> None:
    """DELETE forgets the subscription, and what waited for it is never delivered."""
    api.receiver.answer(503)
    created = await api.create()
    await api.commit(api.event(1), api.event(2))
    status, _, _ = await api.call("DELETE", f"/v1/subscriptions/{created['id']}")
    assert status == 204
    assert await api.store.backlog(created["id"]) == 0
    status, problem, headers = await api.call("GET", f"/v1/subscriptions/{created['id']}")
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert created["id"] in problem["detail"]


async def test_disable_holds_deliveries_and_enable_resumes_them(api: ApiHarness) -> None:
    """A disabled subscription gets nothing new; enabled again, it gets the next events."""
    created = await api.create()
    status, disabled, _ = await api.call("POST", f"/v1/subscriptions/{created['id']}/disable")
    assert status == 200
    assert disabled["disabled"] is True
    await api.until(lambda: api.subs.registry.sinks_for(api.event(0)) == (), "the reload")
    await api.commit(api.event(1))
    status, enabled, _ = await api.call("POST", f"/v1/subscriptions/{created['id']}/enable")
    assert status == 200
    assert enabled["disabled"] is False
    await api.until(lambda: api.subs.registry.sinks_for(api.event(0)) != (), "the reload")
    later = api.event(2)
    await api.commit(later)
    await api.until(lambda: later.id in api.receiver.delivered_ids(), "the delivery")
    assert [h.webhook_id for h in api.receiver.hits] == [later.id]


async def test_bad_bodies_are_refused_naming_the_field(api: ApiHarness) -> None:
    """Unknown fields, wrong types, bad secrets and non-JSON get a 4xx naming the culprit."""
    cases = [
        ({"url": "http://x.example", "colour": "red"}, 422, "colour: unknown field"),
        ({"url": "http://x.example", "event_types": "x"}, 422, "event_types"),
        ({"url": "http://x.example", "secret": "nope"}, 422, "secret: must look like whsec_"),
        ({"event_types": ["*"]}, 422, "url: required"),
        ({"url": "ftp://x.example/"}, 422, "url: String should match pattern"),
        ({"url": "http://"}, 422, "url: the url must be an http"),
    ]
    for body, status, detail in cases:
        got, problem, _ = await api.call("POST", "/v1/subscriptions", body)
        assert (got, detail in problem["detail"]) == (status, True), problem
    async with api.http.post(
        api.url("/v1/subscriptions"),
        data=b"{not json",
        headers={
            "Authorization": "Bearer admin-token-for-tests-0123456789",
            "Content-Type": "application/json",
        },
    ) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["detail"] == "the body is not valid JSON"


async def test_unknown_paths_and_methods_are_problems(api: ApiHarness) -> None:
    """An unknown path answers 404 and a wrong method 405 with Allow, both as problems."""
    status, problem, _ = await api.call("GET", "/v1/nothing")
    assert status == 404
    assert problem["status"] == 404
    status, _, headers = await api.call("PUT", "/v1/subscriptions")
    assert status == 405
    assert headers["Allow"] == "GET, POST"


async def test_openapi_document_is_served_without_a_token(api: ApiHarness) -> None:
    """GET /v1/openapi.json is OpenAPI 3.1 and documents every endpoint."""
    status, doc, headers = await api.call("GET", "/v1/openapi.json", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v1/subscriptions",
        "/v1/subscriptions/{id}",
        "/v1/subscriptions/{id}/disable",
        "/v1/subscriptions/{id}/enable",
        "/v1/subscriptions/{id}/secret/rotate",
        "/v1/subscriptions/{id}/test",
        "/v1/subscriptions/{id}/attempts",
        "/v1/subscriptions/{id}/resend/{event_id}",
        "/v1/subscriptions/{id}/recover",
        "/v1/tokens",
        "/v1/tokens/{token_id}",
    }
