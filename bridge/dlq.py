"""`exmail-bridge dlq list|replay|purge`: inspect and act on dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.config import Config
from bridge.errors import ConfigError
from bridge.store import open_store

__all__ = ["dlq"]


async def dlq(config: Config, action: str, *, sink: str | None, id: str | None) -> int:
    """Run one dead-letter action and print what it did; exit code 0."""
    if sink is not None and sink not in {s.name for s in config.sinks}:
        raise ConfigError("--sink", f"no sink named {sink!r} in the config")
    async with open_store(config.bridge) as store:
        if action == "list":
            letters = await store.dead_letters(sink, limit=10_000)
            letters = [d for d in letters if id is None or d.event.id == id]
            for d in letters:
                when = datetime.fromtimestamp(d.failed_at, UTC).isoformat(timespec="seconds")
                print(
                    f"{when}  {d.sink}  {d.event.id}  {d.event.type}  {d.event.mailbox}  "
                    f"attempts={d.attempts}  {d.reason}"
                )
            print(f"{len(letters)} dead letter(s)")
        elif action == "replay":
            print(f"replayed {await store.replay(sink, id)} dead letter(s)")
        else:
            print(f"purged {await store.purge(sink, id)} dead letter(s)")
    return 0
