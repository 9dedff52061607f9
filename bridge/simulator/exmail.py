"""A multi-tenant fake of Tencent Exmail's legacy OpenAPI, as an aiohttp application.

    app = make_exmail_app(settings=SimSettings(hold_s=1, framing="ndjson"))
    state = app[STATE]               # drive it from Python: state.send_mail(...), ...
    runner = await start_site(app, host="127.0.0.1", port=0)

The token endpoint, the OpenAPI and the SSO login page share one port; the control API
lives under `/_sim/` (see exmail_control).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bridge.binding import start_tcp_site
from bridge.errors import ListenError
from bridge.simulator.exmail_api import STATE, answers, routes
from bridge.simulator.exmail_control import control_routes
from bridge.simulator.exmail_faults import Faults, SimSettings
from bridge.simulator.exmail_listen import listen
from bridge.simulator.exmail_newapi_control import install_newapi
from bridge.simulator.exmail_state import ExmailSimState
from bridge.simulator.newapi_read import newapi_read_routes

__all__ = [
    "STATE",
    "ExmailSimState",
    "Faults",
    "SimSettings",
    "make_exmail_app",
    "site_port",
    "start_site",
]


def make_exmail_app(
    *,
    state: ExmailSimState | None = None,
    credentials: Mapping[str, str] | None = None,
    settings: SimSettings | None = None,
) -> web.Application:
    """The simulator app; its state is `app[STATE]` (made from `credentials`/`settings`)."""
    app = web.Application(middlewares=[answers], client_max_size=1 << 20)
    app[STATE] = state or ExmailSimState(credentials=credentials, settings=settings)
    app.add_routes([*routes(), web.post("/openapi/listen", listen), *control_routes()])
    app.add_routes(newapi_read_routes())
    app.on_shutdown.append(_release_listens)
    install_newapi(app)  # the new API (api.exmail.qq.com) on the same port
    return app


async def _release_listens(app: web.Application) -> None:
    app[STATE].close()


async def start_site(app: web.Application, *, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port (0 = any free port); `await runner.cleanup()` to stop.

    Handlers are cancelled when their client goes away, so a held listen whose client
    disconnected frees its slot (and re-queues its pushes) at once.
    """
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        await start_tcp_site(runner, host, port, backlog=4096)
    except ListenError:
        await runner.cleanup()
        raise
    return runner


def site_port(runner: web.AppRunner) -> int:
    """The TCP port the runner's first site listens on."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the runner has no TCP site")
