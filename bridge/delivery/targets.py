"""Where a subscription may point: the SSRF rules, checked at the API and again on connect.

- Only `http` and `https` URLs with a host.
- Never the bridge itself (its public URL, or its own listen ports on a local address),
  so a subscription cannot make the bridge call its own API.
- Private, loopback, link-local and other non-global addresses only when
  `[api] allow_private_targets = true`. The check resolves the host at the API, and the
  delivery connector resolves it again on every connect through `GuardedResolver`, so a
  name that later resolves to an internal address (DNS rebinding) is still refused.
- Redirects are never followed (the webhook POST uses `allow_redirects=False`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["GuardedResolver", "TargetRefused", "check_target", "own_origins", "redacted_url"]

_LOCAL_HOSTS = frozenset({"localhost", "0.0.0.0", "::", "127.0.0.1", "::1"})


class TargetRefused(ValueError):
    """A subscription URL that the rules refuse; the message says which rule."""


def _port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


def own_origins(public_url: str, listens: Sequence[str | None]) -> frozenset[tuple[str, int]]:
    """(host, port) pairs that are the bridge itself."""
    parts = urlsplit(public_url)
    found = {((parts.hostname or "").lower(), _port(parts.scheme, parts.port))}
    for listen in listens:
        if listen:
            host, _, port = listen.rpartition(":")
            found.add((host.strip("[]").lower(), int(port)))
    return frozenset(found)


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


def _is_self(host: str, port: int, own: frozenset[tuple[str, int]]) -> bool:
    if (host, port) in own:
        return True
    own_ports = {p for h, p in own if h in _LOCAL_HOSTS}
    return host in _LOCAL_HOSTS and port in own_ports


async def _addresses(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the host {host!r} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


async def check_target(url: str, *, allow_private: bool, own: frozenset[tuple[str, int]]) -> None:
    """Raise TargetRefused unless `url` may receive deliveries."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TargetRefused("the url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise TargetRefused("the url must not carry credentials")
    host = parts.hostname.lower()
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise TargetRefused("the url has an invalid host name") from exc
    try:
        port = _port(parts.scheme, parts.port)
    except ValueError as exc:
        raise TargetRefused("the url has an invalid port") from exc
    if _is_self(host, port, own):
        raise TargetRefused("the url points at the bridge itself")
    if allow_private:
        return
    addresses = await _addresses(host, port)
    if any(_is_private(a) for a in addresses):
        raise TargetRefused(
            "the url resolves to a private address (set [api] allow_private_targets to allow)"
        )


class GuardedResolver(AbstractResolver):
    """aiohttp's threaded resolver, minus non-global addresses unless they are allowed."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses that may be connected to; OSError when none may."""
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        allowed = [r for r in found if not _is_private(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to private addresses")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def redacted_url(url: str) -> str:
    """The URL without credentials or query (which may carry a receiver's key), for logs
    and events."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"
