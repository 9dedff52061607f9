"""Listing and revoking scoped tokens on /v1/tokens, on both stores: admin only, no secret
in any answer, and a revoked token refused at its very next request on every replica."""

from __future__ import annotations

from typing import Any

import aiohttp
from structlog.testing import capture_logs

from bridge.delivery.subscription_model import hash_token, new_id
from tests.plugins.services import free_port
from tests.plugins.store import StoreMaker
from tests.web.conftest import ADMIN_TOKEN, ApiHarness, api_config, serve_api


async def _made(api: ApiHarness, *tenants: str, description: str = "") -> dict[str, Any]:
    body = {"tenants": list(tenants), "description": description}
    status, made, _ = await api.call("POST", "/v1/tokens", body)
    assert status == 201, made
    return dict(made)


def _leaks(raw: str, made: list[dict[str, Any]]) -> list[str]:
    """Which made tokens' value or hash appear in `raw` (by id: the secrets stay unprinted)."""
    return [m["id"] for m in made if m["token"] in raw or hash_token(m["token"]) in raw]


async def test_list_shows_each_token_without_its_value_or_hash(api: ApiHarness) -> None:
    """GET /v1/tokens lists id, tenants, description, created_at by id; no value, no hash."""
    first = await _made(api, "acme", description="OA of acme")
    second = await _made(api, "beta", "gamma")
    async with api.http.get(
        api.url("/v1/tokens"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as resp:
        assert resp.status == 200
        raw = await resp.text()
        listing = await resp.json()
    assert _leaks(raw, [first, second]) == []
    assert listing["next_cursor"] is None
    assert listing["data"] == [
        {k: made[k] for k in ("id", "tenants", "description", "created_at")}
        for made in sorted([first, second], key=lambda m: m["id"])
    ]


async def test_list_pages_by_cursor(api: ApiHarness) -> None:
    """limit and cursor page through the tokens like through subscriptions."""
    ids = sorted([(await _made(api, "acme"))["id"] for _ in range(3)])
    status, page, _ = await api.call("GET", "/v1/tokens?limit=2")
    assert status == 200
    assert ([t["id"] for t in page["data"]], page["next_cursor"]) == (ids[:2], ids[1])
    status, page, _ = await api.call("GET", f"/v1/tokens?limit=2&cursor={ids[1]}")
    assert ([t["id"] for t in page["data"]], page["next_cursor"]) == (ids[2:], None)
    status, problem, _ = await api.call("GET", "/v1/tokens?cursor=sub_nope")
    assert (status, problem["detail"]) == (400, "cursor: not a cursor this API returned")


async def test_a_revoked_token_is_refused_at_its_next_request(api: ApiHarness) -> None:
    """DELETE is 204, logs the id only; the token's next request is 401, others still work."""
    doomed, other = await _made(api, "acme"), await _made(api, "acme")
    status, _, _ = await api.call("GET", "/v1/subscriptions", token=doomed["token"])
    assert status == 200
    with capture_logs() as logs:
        status, body, _ = await api.call("DELETE", f"/v1/tokens/{doomed['id']}")
    assert (status, body) == (204, None)
    revoked = [e for e in logs if e["event"] == "api_token_revoked"]
    assert [(e["log_level"], e["id"]) for e in revoked] == [("info", doomed["id"])]
    assert set(revoked[0]) == {"event", "log_level", "component", "id"}
    assert _leaks(repr(logs), [doomed, other]) == []
    status, problem, headers = await api.call("GET", "/v1/subscriptions", token=doomed["token"])
    assert (status, problem["detail"]) == (401, "unknown or revoked token")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, listing, _ = await api.call("GET", "/v1/tokens")
    assert [t["id"] for t in listing["data"]] == [other["id"]]
    status, _, _ = await api.call("GET", "/v1/subscriptions", token=other["token"])
    assert status == 200


async def test_revoking_an_unknown_token_is_404(api: ApiHarness) -> None:
    """An id never made, already revoked or the admin's answers a 404 problem naming it."""
    made = await _made(api, "acme")
    status, _, _ = await api.call("DELETE", f"/v1/tokens/{made['id']}")
    assert status == 204
    for token_id in (made["id"], new_id("tok"), "admin"):
        async with api.http.delete(
            api.url(f"/v1/tokens/{token_id}"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
            problem = await resp.json(content_type=None)
        assert problem == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": f"no token {token_id}",
        }


async def test_a_scoped_token_may_neither_list_nor_revoke(api: ApiHarness) -> None:
    """A scoped token gets 403 on GET and DELETE, even for itself; nothing is revoked."""
    acme, beta = await _made(api, "acme"), await _made(api, "beta")
    status, problem, _ = await api.call("GET", "/v1/tokens", token=acme["token"])
    assert (status, problem["detail"]) == (403, "this endpoint needs an admin token")
    for target in (beta, acme):
        path = f"/v1/tokens/{target['id']}"
        status, problem, _ = await api.call("DELETE", path, token=acme["token"])
        assert (status, problem["detail"]) == (403, "this endpoint needs an admin token")
    status, listing, _ = await api.call("GET", "/v1/tokens")
    assert [t["id"] for t in listing["data"]] == sorted([acme["id"], beta["id"]])
    status, _, _ = await api.call("GET", "/v1/tokens", token=None)
    assert status == 401


async def test_a_token_revoked_on_one_replica_is_refused_on_another(
    api: ApiHarness, store_maker: StoreMaker
) -> None:
    """A token revoked through one replica is refused by another at once (nothing cached)."""
    made = await _made(api, "acme")
    port = free_port()
    headers = {"Authorization": f"Bearer {made['token']}"}
    other = f"http://127.0.0.1:{port}/v1/subscriptions"
    async with (
        store_maker.open() as store,
        serve_api(store, api_config(port), port),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(other, headers=headers) as resp:
            assert resp.status == 200
        status, _, _ = await api.call("DELETE", f"/v1/tokens/{made['id']}")
        assert status == 204
        async with http.get(other, headers=headers) as resp:
            assert resp.status == 401


async def test_the_document_describes_list_and_revoke(api: ApiHarness) -> None:
    """The served document has both operations; other methods on them get 405 with Allow."""
    _, doc, _ = await api.call("GET", "/v1/openapi.json", token=None)
    listing = doc["paths"]["/v1/tokens"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["$ref"].endswith("/TokenList")
    revoke = doc["paths"]["/v1/tokens/{token_id}"]["delete"]
    assert set(revoke["responses"]) == {"204", "default"}
    assert set(doc["components"]["schemas"]["TokenOut"]["properties"]) == {
        "id", "tenants", "description", "created_at",
    }  # fmt: skip
    status, _, headers = await api.call("PUT", f"/v1/tokens/{new_id('tok')}")
    assert (status, headers["Allow"]) == (405, "DELETE")
    status, _, headers = await api.call("DELETE", "/v1/tokens")
    assert (status, headers["Allow"]) == (405, "GET, POST")
