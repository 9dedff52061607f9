"""`exmail-bridge`: run, check, healthcheck, simulate, demo, dlq, subscriptions, tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from bridge import __version__
from bridge.cli_args import non_negative_s, positive_s
from bridge.errors import BridgeError, ConfigError, ListenError
from bridge.simulator.args import add_arguments as add_simulator_arguments

if TYPE_CHECKING:
    from bridge.config import Config, TenantConfig

# Commands import what they need when they run: `healthcheck` is a container probe, run
# every few seconds, and must not pay for pydantic, asyncio or aiohttp.

__all__ = ["main"]


def _credential(tenant: TenantConfig) -> str:
    """Whose credential a tenant uses: the admin account, or the protocol and corp."""
    if tenant.protocol == "legacy":
        return tenant.client_id
    return f"{tenant.protocol}, corp {tenant.corp_id}"


def _summary(config: Config) -> list[str]:
    lines = [
        f"store: {config.bridge.store.split('://', 1)[0]}",
        f"http_listen: {config.bridge.http_listen}",
        f"public_listen: {config.bridge.public_listen or '(shares http_listen)'}",
        f"exmail api_base: {config.exmail.api_base}",
        f"tenants: {len(config.tenants)}",
    ]
    lines += [f"  - {t.name} ({_credential(t)}, watch {len(t.watch)})" for t in config.tenants]
    lines.append(f"sinks: {len(config.sinks)}")
    lines += [f"  - {s.name} ({s.type})" for s in config.sinks]
    lines.append(f"routes: {len(config.routes) or 'none (every event to every sink)'}")
    for route in config.routes:
        lines.append(
            f"  - tenants {list(route.tenants)} mailboxes {list(route.mailboxes)} "
            f"events {list(route.events)} -> {list(route.sinks)}"
        )
    if config.me is None:
        lines.append("me: off (no [me] section)")
    else:
        lines.append(f"me: {config.bridge.public_url}/me (sign-in: sink {config.me_sink().name})")
    return lines


def _cmd_check(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.config import load_config

    config = load_config(args.config, to_run=True)
    print("\n".join(_summary(config)))
    if args.connect:
        from bridge.checks import check_tenants

        return asyncio.run(check_tenants(config))
    print("config ok")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bridge.app import run
    from bridge.config import load_config

    return run(load_config(args.config, to_run=True))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.simulator.serve import serve_forever

    return serve_forever(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from bridge.demo import demo

    return demo(args.config, args.duration)


def _cmd_healthcheck(args: argparse.Namespace) -> int:
    from bridge.healthcheck import probe

    return probe(args.config, ready=args.ready, timeout_s=args.timeout_s)


def _cmd_dlq(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.config import load_config
    from bridge.dlq import dlq

    return asyncio.run(dlq(load_config(args.config), args.action, sink=args.sink, id=args.id))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="exmail-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"exmail-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(
        name: str, helptext: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument(
            "-c",
            "--config",
            help="config file (default: $EXMAIL_BRIDGE_CONFIG, else ./config.toml)",
        )
        cmd.set_defaults(fn=fn)
        return cmd

    check = with_config("check", "validate a config and print a summary", _cmd_check)
    check.add_argument("--connect", action="store_true", help="also fetch a token per tenant")
    with_config("run", "run the bridge", _cmd_run)
    demo = with_config(
        "demo", "run simulators, receivers and the bridge; show deliveries", _cmd_demo
    )
    demo.add_argument(
        "--duration", type=non_negative_s, default=0.0, help="run S seconds in all, then stop"
    )
    dlq = with_config("dlq", "inspect, replay or purge dead letters", _cmd_dlq)
    dlq.add_argument("action", choices=["list", "replay", "purge"])
    dlq.add_argument("--sink", help="only this sink")
    dlq.add_argument("--id", help="only this event id")

    health = with_config(
        "healthcheck", "probe the running bridge's /healthz (exit 0 ok, 1 not)", _cmd_healthcheck
    )
    health.add_argument("--ready", action="store_true", help="probe /readyz instead")
    health.add_argument("--timeout-s", type=positive_s, default=3.0, help="give up after S seconds")

    from bridge.cli_subscriptions_args import add_commands

    add_commands(sub, with_config)

    sim = sub.add_parser("simulate", help="serve a fake Exmail (and WeCom) OpenAPI")
    add_simulator_arguments(sim)
    sim.set_defaults(fn=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `exmail-bridge` console script."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
