"""An incremental decoder for the listen channel's byte stream: feed bytes, get values.

The channel may carry one JSON object per response, several separated by newlines, or
several simply concatenated, and the protocol document's own examples carry trailing
commas (`{"Ver":"1364460338051",}`). The decoder finds each top-level value by tracking
bracket depth outside strings, remembering where it stopped, so a large body is scanned
once (linear, not quadratic). Text that is not JSON becomes a `Garbage` item: the caller
counts and skips it and goes on with the next value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Garbage", "Oversized", "StreamDecoder", "loads_lenient"]

_SPECIAL = re.compile(rb'["\\{}\[\]]')
_STRING_OR_TRAILING_COMMA = re.compile(rb'("(?:[^"\\]|\\.)*")|,\s*(?=[}\]])', re.DOTALL)
_SEPARATORS = b" \t\r\n,"
_GARBAGE_END = re.compile(rb"[\n{\[]")


@dataclass(frozen=True, slots=True)
class Oversized:
    """A value longer than the decoder's `max_value_bytes`; the caller stops reading."""

    size: int


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that were not JSON; `size` is how many (the bytes are not kept)."""

    size: int


def loads_lenient(data: bytes) -> Any:
    """Parse JSON, accepting trailing commas before `}` or `]`; raise ValueError if not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        fixed = _STRING_OR_TRAILING_COMMA.sub(lambda m: m.group(1) or b"", data)
        return orjson.loads(fixed)  # JSONDecodeError is a ValueError


class StreamDecoder:
    """Split a byte stream into top-level JSON values (and `Garbage` runs)."""

    def __init__(self, *, max_value_bytes: int | None = None) -> None:
        self._max = max_value_bytes
        self._buf = bytearray()
        self._start = 0  # where the current value begins
        self._pos = 0  # where scanning of the current value resumes
        self._depth = 0
        self._in_string = False
        self.saw_oversized = False  # an `Oversized` item was handed out

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the value not yet complete (what a per-push cap applies to)."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return every value completed by them, in order."""
        self._buf += data
        out: list[Any] = []
        while self._next(out, final=False):
            pass
        self._compact()
        return out

    @property
    def overflowing(self) -> bool:
        """Whether the value still being read is already over `max_value_bytes`."""
        return self._max is not None and self.pending_bytes > self._max

    def close(self) -> list[Any]:
        """The stream ended: return what is left (an unfinished value is `Garbage`)."""
        out: list[Any] = []
        while self._next(out, final=True):
            pass
        rest = len(self._buf) - self._start
        if rest:
            out.append(Garbage(rest))
        self._done(len(self._buf))
        self._compact()
        return out

    def _next(self, out: list[Any], *, final: bool) -> bool:
        """Emit at most one item into `out`; False when more bytes are needed."""
        if self._pos == self._start:  # between values
            if not self._skip_separators():
                return False
            if self._buf[self._start] not in b"{[":
                return self._garbage(out, final=final)
        end = self._scan()
        if end < 0:
            return False
        size = end - self._start
        if self._max is not None and size > self._max:
            out.append(Oversized(size))  # items before it are still handed out
            self.saw_oversized = True
        else:
            out.append(_parse(bytes(self._buf[self._start : end])))
        self._done(end)
        return True

    def _skip_separators(self) -> bool:
        buf, start = self._buf, self._start
        while start < len(buf) and buf[start] in _SEPARATORS:
            start += 1
        self._start = self._pos = start
        return start < len(buf)

    def _garbage(self, out: list[Any], *, final: bool) -> bool:
        match = _GARBAGE_END.search(self._buf, self._start + 1)
        if match is None and not final:
            return False
        end = len(self._buf) if match is None else match.start()
        out.append(Garbage(end - self._start))
        self._done(end)
        return True

    def _scan(self) -> int:
        """Continue scanning the value at `_start`; its end, or -1 if incomplete."""
        buf, pos = self._buf, self._pos
        while (match := _SPECIAL.search(buf, pos)) is not None:
            char, pos = buf[match.start()], match.end()
            if self._in_string:
                if char == 0x5C:  # a backslash escapes the next byte
                    if pos >= len(buf):
                        self._pos = match.start()
                        return -1
                    pos += 1
                elif char == 0x22:
                    self._in_string = False
            elif char == 0x22:
                self._in_string = True
            elif char in b"{[":
                self._depth += 1
            elif char in b"}]":
                self._depth -= 1
                if self._depth == 0:
                    return pos
        self._pos = len(buf)
        return -1

    def _done(self, end: int) -> None:
        self._start = self._pos = end
        self._depth = 0
        self._in_string = False

    def _compact(self) -> None:
        """Drop consumed bytes once per feed, so the cost stays linear in the input."""
        if self._start:
            del self._buf[: self._start]
            self._pos -= self._start
            self._start = 0


def _parse(data: bytes) -> Any:
    try:
        return loads_lenient(data)
    except ValueError:
        return Garbage(len(data))
