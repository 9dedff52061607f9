"""The durable store: pick a backend from `[bridge] store`.

`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` opens the embedded store
(parent directories are created); `redis://`, `rediss://` and `unix://` URLs open the
Redis store under `[bridge] redis_prefix`.

    async with open_store(config.bridge) as store:
        ...
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bridge.config import SQLITE_HINT, BridgeSection
from bridge.errors import ConfigError
from bridge.store.base import CommitResult, DeadLetter, Delivery, Routed, Store

__all__ = ["CommitResult", "DeadLetter", "Delivery", "Routed", "Store", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:///...` URL names (three slashes: relative, four: absolute)."""
    parts = urlsplit(url)
    path = parts.path.removeprefix("/")
    if parts.scheme != "sqlite" or parts.netloc or not path:
        raise ConfigError("bridge.store", SQLITE_HINT)
    return Path(path)


def open_store(settings: BridgeSection, *, running: bool = False) -> Store:
    """The store `settings.store` names, not yet opened: use it with `async with`.

    `running`: for the bridge itself, which must be the only one on a SQLite file (the
    CLI's `dlq` may still open it alongside)."""
    scheme = urlsplit(settings.store).scheme
    if scheme == "sqlite":
        from bridge.store.sqlite import SqliteStore

        return SqliteStore(
            path=sqlite_path(settings.store),
            dedupe_window_s=settings.dedupe_window_s,
            exclusive=running,
        )
    if scheme in {"redis", "rediss", "unix"}:
        from bridge.store.redis import RedisStore

        return RedisStore(
            url=settings.store,
            prefix=settings.redis_prefix,
            dedupe_window_s=settings.dedupe_window_s,
        )
    raise ConfigError("bridge.store", f"unknown store scheme {scheme!r}")
