"""Case-insensitive glob matching, compiled once for a hot path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from fnmatch import translate

__all__ = ["matcher"]


def matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of `value` against any of the glob `patterns`, ignoring case; the same
    answers as `any(fnmatchcase(value.lower(), p.lower()) for p in patterns)`."""
    lowered = [p.lower() for p in patterns]
    if "*" in lowered:
        return lambda _value: True
    if not lowered:
        return lambda _value: False
    regex = re.compile("|".join(f"(?:{translate(p)})" for p in lowered))
    return lambda value: regex.match(value.lower()) is not None
