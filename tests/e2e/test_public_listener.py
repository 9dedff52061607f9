"""The public listener: its own port serves the public faces, never /metrics or /readyz."""

from __future__ import annotations

import aiohttp

from tests.plugins.e2e import Harness
from tests.plugins.services import free_port


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status


async def test_public_listen_splits_the_faces(e2e: Harness) -> None:
    """With public_listen set, /open/ lives there and the ops routes stay private."""
    public = f"127.0.0.1:{free_port()}"
    config = e2e.write_config(sinks=[e2e.webhook_sink()], bridge={"public_listen": public})
    await e2e.start_bridge(config)
    pub, ops = f"http://{public}", e2e.public_url
    assert await _status(e2e.http, f"{pub}/open/forged") == 403
    assert await _status(e2e.http, f"{pub}/healthz") == 200
    assert await _status(e2e.http, f"{pub}/metrics") == 404
    assert await _status(e2e.http, f"{pub}/readyz") == 404
    assert await _status(e2e.http, f"{ops}/metrics") == 200
    assert await _status(e2e.http, f"{ops}/readyz") == 200
    assert await _status(e2e.http, f"{ops}/open/forged") == 404


async def test_without_public_listen_one_port_serves_all(e2e: Harness) -> None:
    """Unset public_listen: the click-through shares the ops listener, as before."""
    await e2e.start_bridge(e2e.write_config(sinks=[e2e.webhook_sink()]))
    assert await _status(e2e.http, f"{e2e.public_url}/open/forged") == 403
    assert await _status(e2e.http, f"{e2e.public_url}/metrics") == 200
