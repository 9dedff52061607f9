"""Who may do what on /v1/, on both stores: admin and scoped tokens, scope isolation,
401/403 problems naming the reason, and the body size limit."""

from __future__ import annotations

import asyncio

from bridge.delivery.subscription_model import hash_token
from tests.web.conftest import ADMIN_TOKEN, ApiHarness


async def _token(api: ApiHarness, *tenants: str) -> str:
    status, made, _ = await api.call("POST", "/v1/tokens", {"tenants": list(tenants)})
    assert status == 201, made
    return str(made["token"])


async def test_requests_without_a_valid_token_get_401_naming_why(api: ApiHarness) -> None:
    """No token, a non-Bearer header and an unknown token are refused, each saying why."""
    status, problem, headers = await api.call("GET", "/v1/subscriptions", token=None)
    assert (status, problem["title"]) == (401, "Unauthorized")
    assert problem["detail"].startswith("missing bearer token")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    async with api.http.get(
        api.url("/v1/subscriptions"), headers={"Authorization": "Basic dTpw"}
    ) as resp:
        assert resp.status == 401
        assert "Bearer <token>" in (await resp.json(content_type=None))["detail"]
    for wrong in (ADMIN_TOKEN + "x", "ebt_" + "A" * 43):
        status, problem, _ = await api.call("GET", "/v1/subscriptions", token=wrong)
        assert (status, problem["detail"]) == (401, "unknown or revoked token")


async def test_tokens_are_shown_once_and_stored_hashed(api: ApiHarness) -> None:
    """POST /v1/tokens answers the token once; the store holds only its hash."""
    status, made, _ = await api.call(
        "POST", "/v1/tokens", {"tenants": ["acme"], "description": "OA of acme"}
    )
    assert status == 201
    assert made["id"].startswith("tok_")
    assert made["token"].startswith("ebt_")
    assert (made["tenants"], made["description"]) == (["acme"], "OA of acme")
    assert made["created_at"].endswith("Z")
    stored = await api.store.token_by_hash(hash_token(made["token"]))
    assert stored is not None
    assert stored.id == made["id"]
    assert made["token"] not in stored.to_record().decode()
    status, _, _ = await api.call("GET", "/v1/subscriptions", token=made["token"])
    assert status == 200


async def test_only_admins_make_tokens(api: ApiHarness) -> None:
    """A scoped token asking for a token gets 403 naming the reason."""
    scoped = await _token(api, "acme")
    status, problem, _ = await api.call("POST", "/v1/tokens", {"tenants": ["beta"]}, token=scoped)
    assert (status, problem["detail"]) == (403, "this endpoint needs an admin token")


async def test_a_scoped_token_cannot_see_or_change_others(api: ApiHarness) -> None:
    """Another tenant's subscription is 404 to a scoped token on every endpoint; admin sees it."""
    acme, beta = await _token(api, "acme"), await _token(api, "beta")
    mine = await api.create(token=acme)
    assert mine["scope"] == ["acme"]
    theirs = await api.create(token=beta, url=api.receiver.url("/beta"))
    status, page, _ = await api.call("GET", "/v1/subscriptions", token=acme)
    assert [s["id"] for s in page["data"]] == [mine["id"]]
    other = f"/v1/subscriptions/{theirs['id']}"
    for method, path, body in [
        ("GET", other, None),
        ("PATCH", other, {"description": "mine now"}),
        ("POST", f"{other}/disable", None),
        ("POST", f"{other}/secret/rotate", {}),
        ("POST", f"{other}/test", None),
        ("GET", f"{other}/attempts", None),
        ("POST", f"{other}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("DELETE", other, None),
    ]:
        status, problem, _ = await api.call(method, path, body, token=acme)
        assert (method, path, status) == (method, path, 404), problem
    status, page, _ = await api.call("GET", "/v1/subscriptions")
    assert {s["id"] for s in page["data"]} == {mine["id"], theirs["id"]}


async def test_a_scoped_subscription_receives_only_its_tenants_events(api: ApiHarness) -> None:
    """A scoped subscription gets only its own tenants' events, even with tenants ["*"]."""
    acme = await _token(api, "acme")
    mine = await api.create(token=acme, tenants=["*"])
    ours, theirs = api.event(1, tenant="acme"), api.event(2, tenant="beta")
    admin_sub = await api.create(url=api.receiver.url("/all"))
    await api.commit(theirs, ours)
    await api.until(lambda: len(api.receiver.delivered("/all")) == 2, "the admin's deliveries")
    await api.until(lambda: ours.id in api.receiver.delivered_ids("/hook"), "the delivery")
    await asyncio.sleep(0.3)
    assert theirs.id not in api.receiver.delivered_ids("/hook")
    status, _, _ = await api.call(
        "POST", f"/v1/subscriptions/{mine['id']}/resend/{theirs.id}", token=acme
    )
    assert status == 404
    assert admin_sub["scope"] is None


async def test_oversized_bodies_get_413(api: ApiHarness) -> None:
    """A body over [api] max_body_bytes is refused before it is parsed."""
    huge = {"url": "http://x.example/", "description": "x" * 70_000}
    status, problem, _ = await api.call("POST", "/v1/subscriptions", huge)
    assert (status, problem["title"]) == (413, "Content Too Large")
