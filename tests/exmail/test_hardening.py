"""Upstream answers that used to park, cut off or flood: token refusals, caps, labels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from bridge.config import ExmailSection, TenantConfig
from bridge.errors import CredentialsError, UpstreamProtocolError, UpstreamUnavailable
from bridge.exmail.client import ExmailClient
from bridge.exmail.decode import Oversized, StreamDecoder
from bridge.exmail.pushes import MailPush
from bridge.metrics import REGISTRY
from bridge.ratelimit import RateLimiter
from bridge.simulator.exmail import site_port, start_site
from tests.exmail.helpers import ACME, collect, sample
from tests.plugins.sim import ExmailSim

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def token_server(handler: Handler) -> AsyncIterator[str]:
    """A real local server whose /cgi-bin/token answers with `handler`; its token URL."""
    app = web.Application()
    app.router.add_route("*", "/cgi-bin/token", handler)
    runner = await start_site(app, host="127.0.0.1", port=0)
    try:
        yield f"http://127.0.0.1:{site_port(runner)}/cgi-bin/token"
    finally:
        await runner.cleanup()


def answering(status: int, body: str, content_type: str) -> Handler:
    """A handler that always answers `status` with `body`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    return handler


async def _fetch(settings: ExmailSection, tenant: TenantConfig) -> None:
    async with aiohttp.ClientSession() as session:
        await ExmailClient(session=session, settings=settings).fetch_token(tenant)


WAF_PAGE = "<html><body><h1>403 Forbidden</h1>Request blocked by WAF</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (403, WAF_PAGE, "text/html"),
        (408, "Request Timeout", "text/plain"),
        (200, '{"errcode":"9999","error":"server_busy_try_later"}', "application/json"),
        (400, '{"error":"something_new"}', "application/json"),
    ],
)
async def test_token_endpoint_oddities_back_off(
    exmail_sim: ExmailSim, tenant: TenantConfig, status: int, body: str, content_type: str
) -> None:
    """A WAF page, a 408 or an unknown error body at the token endpoint is transient."""
    async with token_server(answering(status, body, content_type)) as url:
        settings = exmail_sim.exmail_settings(token_url=url)
        with pytest.raises(UpstreamUnavailable):
            await _fetch(settings, tenant)


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, '{"error":"invalid_client"}'), (400, '{"error":"invalid_grant"}'), (401, "")],
)
async def test_documented_credential_refusals_park(
    exmail_sim: ExmailSim, tenant: TenantConfig, status: int, body: str
) -> None:
    """An RFC 6749 credential error (or a bare 401) is a CredentialsError: park the tenant."""
    async with token_server(answering(status, body, "application/json")) as url:
        settings = exmail_sim.exmail_settings(token_url=url)
        with pytest.raises(CredentialsError):
            await _fetch(settings, tenant)


async def test_retry_after_is_capped_at_an_hour(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A Retry-After of ten days becomes one hour."""
    exmail_sim.state.set_faults(http_429=1.0, retry_after_s=864000, endpoints=["mail/newcount"])
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.newcount(tenant, "bob@acme.com")
    assert caught.value.retry_after_s == 3600


async def test_free_text_error_codes_are_not_metric_labels(
    exmail_sim: ExmailSim, tenant: TenantConfig
) -> None:
    """An error body's free text is counted as `other`, never as a label value of its own."""
    body = '{"errcode":"x-request-7f3a","error":"Service busy (node 12)"}'
    async with token_server(answering(200, body, "application/json")) as url:
        before = sample("exmail_bridge_upstream_errors_total", endpoint="token", code="other")
        with pytest.raises(UpstreamUnavailable):
            await _fetch(exmail_sim.exmail_settings(token_url=url), tenant)
    after = sample("exmail_bridge_upstream_errors_total", endpoint="token", code="other")
    assert after == before + 1
    labels = {
        s.labels.get("code") for m in REGISTRY.collect() for s in m.samples if "code" in s.labels
    }
    assert not {"x-request-7f3a", "Service busy (node 12)"} & labels


async def test_busy_stream_is_not_cut_at_the_cap(
    exmail_sim: ExmailSim, tenant: TenantConfig
) -> None:
    """A held response carrying far more than max_body_bytes in small pushes loses none."""
    exmail_sim.state.configure(None, framing="ndjson")
    sent = [
        exmail_sim.state.send_mail(ACME, to="bob@acme.com", sender="a@b.cn", subject=f"m{i}")
        for i in range(60)
    ]
    settings = exmail_sim.exmail_settings(max_body_bytes=4096)
    async with aiohttp.ClientSession() as session:
        client = ExmailClient(session=session, settings=settings)
        pushes = await collect(client, tenant)
    assert [p.mail_id for p in pushes if isinstance(p, MailPush)] == sent


async def test_one_push_over_the_cap_is_refused(
    exmail_sim: ExmailSim, tenant: TenantConfig
) -> None:
    """A single push larger than max_body_bytes is still an oversized error."""
    exmail_sim.state.set_faults(oversized_bytes=64 << 10, endpoints=["listen"])
    settings = exmail_sim.exmail_settings(max_body_bytes=4096)
    async with aiohttp.ClientSession() as session:
        client = ExmailClient(session=session, settings=settings)
        with pytest.raises(UpstreamProtocolError) as caught:
            await collect(client, tenant)
    assert caught.value.code == "oversized"


async def test_directory_of_a_100000_account_company_fits(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """user/list answering 100,000 accounts is read whole, past the 1 MiB default cap."""
    sim_tenant = exmail_sim.state.tenant(ACME)
    for i in range(100_000):
        sim_tenant.users[f"user{i:06d}@acme.example.com"] = {"Name": f"user{i}"}
    delta = await client.user_list(tenant, "0")
    assert len(delta.added) == 100_000


async def test_rate_budget_is_shared_fairly() -> None:
    """A tenant asking twenty times does not make another tenant's one request wait behind."""
    limiter = RateLimiter(rate_per_s=200, burst=1)
    order: list[str] = []

    async def take(key: str) -> None:
        await limiter.acquire(key)
        order.append(key)

    greedy = [asyncio.create_task(take("greedy")) for _ in range(20)]
    await asyncio.sleep(0)
    await take("quiet")
    await asyncio.gather(*greedy)
    assert order.index("quiet") <= 2


def test_decoder_hands_out_pushes_before_an_oversized_one() -> None:
    """Values before an over-cap value are returned; the big one becomes an Oversized marker."""
    decoder = StreamDecoder(max_value_bytes=100)
    items = decoder.feed(b'{"a":1}\n{"b":"' + b"x" * 500 + b'"}')
    assert items[0] == {"a": 1}
    assert isinstance(items[1], Oversized)


@pytest.mark.parametrize("expires_in", ['"nan"', '"inf"', "-5", "true", '"soon"'])
async def test_a_sloppy_expires_in_keeps_one_token(
    exmail_sim: ExmailSim, tenant: TenantConfig, expires_in: str
) -> None:
    """A token whose expires_in is not a finite positive number is kept for the default."""
    tokens = 0

    async def token(_: web.Request) -> web.StreamResponse:
        nonlocal tokens
        tokens += 1
        body = f'{{"access_token":"t{tokens}","expires_in":{expires_in}}}'
        return web.Response(text=body, content_type="application/json")

    async def newcount(_: web.Request) -> web.StreamResponse:
        return web.json_response({"Alias": "bob@acme.com", "NewCount": 1})

    app = web.Application()
    app.router.add_post("/cgi-bin/token", token)
    app.router.add_post("/openapi/mail/newcount", newcount)
    runner = await start_site(app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{site_port(runner)}"
    try:
        settings = exmail_sim.exmail_settings(token_url=f"{url}/cgi-bin/token", api_base=url)
        async with aiohttp.ClientSession() as session:
            client = ExmailClient(session=session, settings=settings)
            for _ in range(3):
                assert await client.newcount(tenant, "bob@acme.com") == 1
    finally:
        await runner.cleanup()
    assert tokens == 1
