"""A served /me page against the WeCom simulator and a real SQLite store, and a browser-less
client that signs in through the simulator's QR page the way a person would."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.config import MeSection
from bridge.store.sqlite import SqliteStore
from bridge.web.me import MePage
from bridge.web.public import make_public_app
from tests.plugins.services import free_port
from tests.plugins.wecom import FakeClock, WecomSim, serve_app

__all__ = ["DESKTOP_UA", "WECOM_UA", "Answer", "MeSite", "fetch", "serve_me"]

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"
WECOM_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0 wxwork/4.1.30"
_PICK = re.compile(r'<a class="member" data-userid="([^"]+)" href="([^"]+)"')


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: Any
    text: str


async def fetch(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Answer:
    """GET `url` without following redirects."""
    async with http.get(url, allow_redirects=False, **kwargs) as resp:
        return Answer(resp.status, resp.headers.copy(), await resp.text())


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@dataclass
class MeSite:
    """The served page, its store, the simulator and the page's wall clock."""

    url: str
    page: MePage
    store: SqliteStore
    sim: WecomSim
    clock: FakeClock

    def client(self, **headers: str) -> aiohttp.ClientSession:
        """A browser-like client: keeps cookies (also for 127.0.0.1), desktop by default."""
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"user-agent": DESKTOP_UA, **headers},
        )

    async def sign_in(self, http: aiohttp.ClientSession, userid: str) -> str:
        """Sign in as `userid` through the QR page's picker; return the page's HTML."""
        async with http.get(f"{self.url}/me") as resp:  # follows to the simulator's picker
            picker = await resp.text()
        links = {who: href.replace("&amp;", "&") for who, href in _PICK.findall(picker)}
        async with http.get(f"{self.sim.url}{links[userid]}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()


@asynccontextmanager
async def serve_me(
    sim: WecomSim, tmp_path: Path, *, clock: FakeClock | None = None, **settings: Any
) -> AsyncIterator[MeSite]:
    """Serve MePage for `sim`'s app (bob owns bob@acme.com) on a free port; `clock` is the
    page's wall clock (default: now, moved only by the test)."""
    sim.state.add_member("bob", "bob@acme.com")
    sim.state.add_member("eve", "eve@acme.com")
    port = free_port()
    public_url = settings.pop("public_url", f"http://127.0.0.1:{port}")
    clock = clock or FakeClock(start_s=time.time())
    me = MeSection(qr_login_url=f"{sim.url}/wwlogin/sso/login", **settings)
    async with SqliteStore(path=tmp_path / "me.db", dedupe_window_s=3600) as store:
        page = MePage(
            store=store,
            wecom=sim.sink_config(users={"bob@acme.com": "bob"}),
            settings=me,
            public_url=public_url,
            session_key=b"k" * 32,
            clock=clock,
        )
        await page.start()
        try:
            app = make_public_app(faces=[page], healthz=_healthz)
            async with serve_app(app, port) as url:
                yield MeSite(url=url, page=page, store=store, sim=sim, clock=clock)
        finally:
            await page.aclose()
