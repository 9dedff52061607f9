"""`exmail-bridge simulate`: serve the fake Exmail (and, if present, the fake WeCom)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import tomllib
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.errors import ConfigError
from bridge.simulator.args import add_arguments
from bridge.simulator.exmail import make_exmail_app, site_port, start_site
from bridge.simulator.exmail_faults import SimSettings
from bridge.simulator.wecom import make_wecom_app
from bridge.simulator.wecom_state import WecomState

__all__ = ["add_arguments", "load_credentials", "serve_forever"]


def load_credentials(path: Path) -> dict[str, str]:
    """client_id -> client_secret from a JSON or TOML file (optionally under `tenants`)."""
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError("--tenants", f"cannot read {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("tenants"), dict):
        data = data["tenants"]
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError("--tenants", "must map each client_id to its client_secret")
    return dict(data)


def serve_forever(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    credentials = load_credentials(args.tenants) if args.tenants else None
    _raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, credentials))
    return 0


async def _serve(args: argparse.Namespace, credentials: dict[str, str] | None) -> None:
    settings = SimSettings(
        hold_s=args.hold_s,
        framing=args.framing,
        token_expires_in_s=args.token_expires_in_s,
        # Open to any credential, it knows every mailbox too (as its WeCom knows every
        # member): the shipped config's `watch` list reconciles without a warning.
        any_mailbox=credentials is None,
    )
    app = make_exmail_app(credentials=credentials, settings=settings)
    async with contextlib.AsyncExitStack() as stack:
        runner = await start_site(app, host=args.host, port=args.port)
        stack.push_async_callback(runner.cleanup)
        _announce("exmail", args.host, site_port(runner))
        if args.wecom_port:
            runner = await start_site(_wecom_app(), host=args.host, port=args.wecom_port)
            stack.push_async_callback(runner.cleanup)
            _announce("wecom", args.host, site_port(runner))
        await _until_signalled()


def _wecom_app() -> web.Application:
    # Open to any corp and member: the shipped config.toml runs against it unchanged.
    return make_wecom_app(WecomState(accept_any=True))


def _announce(name: str, host: str, port: int) -> None:
    print(f"{name} simulator listening on http://{host}:{port}", flush=True)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _raise_fd_limit() -> None:
    """Benchmarks hold 10,000 listens: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
