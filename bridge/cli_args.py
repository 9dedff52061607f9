"""argparse types for durations and ports: a bad value is a one-line usage error, not a
traceback."""

from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_s", "port", "positive_s"]


def positive_s(text: str) -> float:
    """Seconds, more than zero (a timeout)."""
    return _seconds(text, allow_zero=False)


def non_negative_s(text: str) -> float:
    """Seconds, zero or more (a duration where 0 means "no limit" or "at once")."""
    return _seconds(text, allow_zero=True)


def _seconds(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):
        return value
    bound = ">= 0" if allow_zero else "> 0"
    raise argparse.ArgumentTypeError(f"must be a number of seconds {bound}, not {text!r}")


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free one)."""
    if text.isdigit() and int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a port number 0..65535, not {text!r}")
