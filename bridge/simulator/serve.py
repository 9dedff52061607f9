"""`exmail-bridge simulate` (placeholder until the simulator lands)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options."""


def serve_forever(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    raise NotImplementedError
