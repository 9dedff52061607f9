"""The Redis store's edges: exception translation and reply decoding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from redis.exceptions import OutOfMemoryError, RedisError

from bridge.errors import StoreError, StoreFullError
from bridge.events import Event
from bridge.store.base import DeadLetter, Delivery

__all__ = ["BACKEND", "dead_letter_from", "delivery_from", "ms", "seam", "split_ref"]

BACKEND = "redis"


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds, the unit of every score and TTL in Redis."""
    return int(seconds * 1000)


@contextlib.asynccontextmanager
async def seam(op: str, timeout_s: float | None) -> AsyncIterator[None]:
    """The one place redis exceptions become store errors."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except OutOfMemoryError as exc:
        raise StoreFullError("redis is out of memory", backend=BACKEND, op=op) from exc
    except (RedisError, OSError) as exc:  # OSError covers TimeoutError too
        raise StoreError(f"{type(exc).__name__}: {exc}", backend=BACKEND, op=op) from exc


def split_ref(ref: str) -> tuple[str, str]:
    """A Delivery ref `<id>@<lease deadline ms>` as (id, claim token)."""
    ident, _, token = ref.partition("@")
    return ident, token


def delivery_from(sink: str, ident: bytes, body: bytes, attempts: bytes, until_ms: int) -> Delivery:
    """A Delivery from one claimed (id, body, attempts) triple."""
    text = ident.decode()
    return Delivery(
        sink=sink,
        event=Event.from_json(body),
        attempt=int(attempts),
        ref=f"{text}@{until_ms}",
        enqueued_at=int(text.rpartition("-")[2]) / 1000,
    )


def dead_letter_from(sink: str, raw: bytes) -> DeadLetter:
    """A DeadLetter from its stored JSON record."""
    rec = orjson.loads(raw)
    return DeadLetter(
        sink=sink,
        event=Event.from_json(orjson.dumps(rec["event"])),
        attempts=int(rec["attempts"]),
        reason=str(rec["reason"]),
        failed_at=float(rec["failed_at"]),
    )
