"""The public listener (`[bridge] public_listen`): what the internet may reach.

Tencent calls back only on ports 80, 443 and 8080, and employees' browsers open
click-through links and the notification page, so this listener sits behind the ingress.
It carries no /metrics and no /readyz: those stay on the private `http_listen`. Each
feature that faces the internet is a `PublicFace` and brings its own routes; when
`public_listen` is unset (or equal to `http_listen`) the faces share the ops listener.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

__all__ = ["Handler", "Listener", "PublicFace", "make_public_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Public requests are small (callbacks are capped at 64 KiB by their own handler); a larger
# body is refused by aiohttp with 413 before any handler reads it.
PUBLIC_MAX_BODY = 256 * 1024


class PublicFace(Protocol):
    """A feature that serves routes on the public listener."""

    def routes(self) -> Sequence[web.RouteDef]:
        """The routes to mount (paths are absolute, e.g. `/open/{token}`)."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One address to listen on and the app served there."""

    address: str
    app: web.Application


def make_public_app(*, faces: Sequence[PublicFace], healthz: Handler) -> web.Application:
    """The public app: every face's routes and /healthz (for the ingress's own probe)."""
    app = web.Application(client_max_size=PUBLIC_MAX_BODY)
    app.router.add_get("/healthz", healthz)
    for face in faces:
        app.router.add_routes(face.routes())
    return app
