"""Start an aiohttp site, turning "address already in use" into one clear ListenError."""

from __future__ import annotations

import errno

from aiohttp import web

from bridge.errors import ListenError

__all__ = ["start_tcp_site"]

_REASONS = {
    errno.EADDRINUSE: "address already in use",
    errno.EACCES: "permission denied (a port below 1024?)",
    errno.EADDRNOTAVAIL: "no such local address",
}


async def start_tcp_site(
    runner: web.AppRunner, host: str, port: int, *, backlog: int = 128
) -> None:
    """Listen on host:port with `runner` (already set up), or raise ListenError."""
    try:
        await web.TCPSite(runner, host, port, backlog=backlog).start()
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ListenError(shown, reason) from exc
