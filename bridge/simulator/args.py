"""`exmail-bridge simulate`'s options, apart from the server so the CLI can list them cheaply."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.cli_args import non_negative_s, port
from bridge.simulator.exmail_faults import FRAMINGS

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=port, default=12211, help="Exmail port (12211)")
    parser.add_argument(
        "--hold-s", type=non_negative_s, default=30.0, help="listen hold in seconds"
    )
    parser.add_argument("--framing", choices=FRAMINGS, default="single", help="listen framing")
    parser.add_argument(
        "--tenants", type=Path, help="JSON or TOML file of client_id = client_secret"
    )
    parser.add_argument(
        "--token-expires-in-s", type=int, default=7200, help="lifetime of issued tokens"
    )
    parser.add_argument(
        "--wecom-port", type=port, default=12212, help="fake WeCom port (12212; 0 = off)"
    )
