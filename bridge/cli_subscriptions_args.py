"""Arguments of `exmail-bridge subscriptions …` and `tokens …`; the work is in
`bridge.cli_subscriptions`, imported only when one of them runs (the CLI stays light for
`healthcheck`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands"]

Command = Callable[[argparse.Namespace], int]
WithConfig = Callable[[str, str, Command], argparse.ArgumentParser]


def _run(action: str | None) -> Command:
    def command(args: argparse.Namespace) -> int:
        from bridge.cli_subscriptions import run_command

        return run_command(action or args.action, args)

    return command


def add_commands(sub: Any, with_config: WithConfig) -> None:
    """Add `subscriptions` and `tokens` to the CLI's subcommands."""
    subs = with_config("subscriptions", "list, create, delete or rotate subscriptions", _run(None))
    subs.add_argument("action", choices=["list", "create", "delete", "rotate"])
    subs.add_argument("id", nargs="?", help="subscription id (delete, rotate)")
    subs.add_argument("--url", help="create: the receiver's URL")
    subs.add_argument("--event-type", action="append", help="create: event type glob (repeat)")
    subs.add_argument("--tenant", action="append", help="create: tenant glob (repeat)")
    subs.add_argument("--mailbox", action="append", help="create: mailbox glob (repeat)")
    subs.add_argument("--description", default="", help="create: a note")
    subs.add_argument("--secret", help="create: a whsec_ secret (default: a fresh one)")
    subs.add_argument("--grace-s", type=int, default=86400, help="rotate: old secret's grace")
    # The placeholder command is replaced below: the real one needs its parser (usage errors).
    tokens = with_config("tokens", "create, list or revoke scoped API tokens", _run(None))
    tokens.add_argument("action", choices=["create", "list", "revoke"])
    tokens.add_argument("id", nargs="?", help="revoke: the token id (tok_…)")
    tokens.add_argument("--tenant", action="append", help="create: tenant (repeat)")
    tokens.add_argument("--description", default="", help="create: a note")
    tokens.set_defaults(fn=_tokens_command(tokens))


def _tokens_command(parser: argparse.ArgumentParser) -> Command:
    run = {"create": _run("token"), "list": _run("token-list"), "revoke": _run("token-revoke")}

    def command(args: argparse.Namespace) -> int:
        if args.action == "create" and not args.tenant:
            parser.error("create needs at least one --tenant")
        if args.action == "revoke" and not args.id:
            parser.error("revoke needs the token id")
        if args.action != "revoke" and args.id:
            parser.error(f"unexpected argument {args.id}")
        return run[args.action](args)

    return command
