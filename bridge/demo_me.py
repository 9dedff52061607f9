"""The demo's part for the "my notifications" page: print its address and sign one member
in through the simulated WeCom QR login page, as a desktop browser would."""

from __future__ import annotations

import html
import re

import aiohttp
from yarl import URL

__all__ = ["sign_in_demo"]

_DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) exmail-bridge-demo"
_MEMBER = re.compile(r'<a class="member" data-userid="([^"]+)" href="([^"]+)"')
_SIGNED_IN = re.compile(r'<strong id="userid">([^<]+)</strong>')


async def sign_in_demo(page_url: str, prefer: str = "bob") -> str | None:
    """Open `page_url`, pick `prefer` (else the first member) on the QR page; the userid."""
    print(f"\nnotification page: {page_url}", flush=True)
    jar = aiohttp.CookieJar(unsafe=True)  # the demo's bridge listens on 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar, headers={"user-agent": _DESKTOP_UA}) as http:
        async with http.get(page_url) as resp:
            picker, picker_url = await resp.text(), resp.url
        members = {who: html.unescape(href) for who, href in _MEMBER.findall(picker)}
        if not members:
            print("  (no QR login page answered: is [me] qr_login_url the simulator?)", flush=True)
            return None
        href = members.get(prefer) or next(iter(members.values()))
        async with http.get(URL(str(picker_url)).join(URL(href))) as resp:
            page = await resp.text()
    found = _SIGNED_IN.search(page)
    if found is None:
        print("  sign-in did not reach the page", flush=True)
        return None
    userid = html.unescape(found.group(1))
    print(f"signed in as {userid}", flush=True)
    return userid
